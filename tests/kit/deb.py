"""Build this checkout's .deb (packaging/deb/build) for the tests that install it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Optional

SYSTEM_PYTHON = "/usr/bin/python3"
BUILD_TIMEOUT = 170  # seconds; a build with pip's cache warm takes about 10 to 20


def missing_build_tool() -> Optional[str]:
    """What packaging/deb/build needs and this machine lacks (with the package), or None."""
    for tool, package in (("dpkg-deb", "dpkg"), ("dpkg-shlibdeps", "dpkg-dev"), ("gcc", "gcc"),
                          ("unshare", "util-linux")):  # fmt: skip
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install {package})"
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found (apt-get install python3)"
    paths = "import sysconfig; print(sysconfig.get_paths()['include'])"
    cp = subprocess.run([SYSTEM_PYTHON, "-c", paths], capture_output=True, text=True, check=True)
    if not (Path(cp.stdout.strip()) / "Python.h").exists():
        return "Python.h not found (apt-get install python3-dev)"
    if subprocess.run([SYSTEM_PYTHON, "-c", "import ensurepip"], capture_output=True).returncode:
        return "python3 -m venv unavailable (apt-get install python3-venv)"
    return None


def opt_entries() -> list[str]:
    """What the host's /opt holds (the package's prefix lives there once installed)."""
    return sorted(os.listdir("/opt")) if os.path.isdir("/opt") else []


def build_deb(tree: Path, out: Path) -> Path:
    """The .deb that `tree`'s packaging/deb/build makes, in `out`; the build must
    leave the host's /opt as it was."""
    out.mkdir(parents=True, exist_ok=True)
    before = opt_entries()
    started = time.monotonic()
    cp = subprocess.run([str(tree / "packaging" / "deb" / "build"), str(out)],
                        capture_output=True, text=True, timeout=BUILD_TIMEOUT)  # fmt: skip
    assert cp.returncode == 0, f"{tree}: packaging/deb/build failed:\n{cp.stdout}{cp.stderr}"
    assert opt_entries() == before, f"{tree}: building the package changed the host's /opt"
    debs = list(out.glob("*.deb"))
    assert len(debs) == 1, f"expected one .deb in {out}, found {debs}"
    took = time.monotonic() - started
    print(f"built {debs[0].name}: {debs[0].stat().st_size} bytes in {took:.1f}s")
    return debs[0]
