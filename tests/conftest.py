"""Shared fixtures: short temp dirs (unix socket paths are limited to 107 bytes).

Tests marked `nginx` skip without Debian's nginx (fail under CI): the kit's
runner raises NginxMissing instead, as it serves the benchmarks too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kit import nginx


@pytest.fixture(scope="session", autouse=True)
def state_directory() -> Iterator[Path]:
    """Every supervisor a test starts keeps its event history here, as under
    systemd's StateDirectory=, never in the host's /var/lib (the harness gives
    each supervisor a dir of its own)."""
    path = Path(tempfile.mkdtemp(prefix="usup-state-", dir="/tmp"))
    old = os.environ.get("STATE_DIRECTORY")
    os.environ["STATE_DIRECTORY"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("STATE_DIRECTORY", None)
        else:
            os.environ["STATE_DIRECTORY"] = old
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def checkout_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's .deb, built once for every test that installs it."""
    from kit.deb import build_deb, missing_build_tool

    missing = missing_build_tool()
    require(missing is None, str(missing))
    return build_deb(Path(__file__).resolve().parent.parent, tmp_path_factory.mktemp("deb"))


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="usup-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def require(condition: bool, reason: str) -> None:
    """Skip outside CI when a tool is missing; in CI (CI=true) that is a failure."""
    if condition:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"required in CI: {reason}")
    print(f"SKIP: {reason}")
    pytest.skip(reason)


def require_nginx() -> None:
    """Skip the test without nginx (see `require`)."""
    reason = nginx.missing()
    require(reason is None, reason or "")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("nginx") is not None:
        require_nginx()
