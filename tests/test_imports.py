"""Every module of the package imports on the running Python.

scripts/matrix runs this on each CPython from 3.9 to 3.13, so syntax or a
standard-library name newer than the oldest supported Python fails there
even in a module that no other fast test imports.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import supervisor

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(supervisor.__path__, "supervisor.")
    if not info.name.endswith(".__main__")  # importing it runs the CLI
)


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)
