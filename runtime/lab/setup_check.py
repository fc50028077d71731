"""The checks of notebooks/00-setup-check.ipynb: is this machine ready for the lab?

Each check returns OK or FAIL with a detail that says what to do, so a workshop attendee can fix
their setup before the first lab starts.

    from runtime.lab.setup_check import run_checks
    run_checks()          # DataFrame: check, status, detail
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from runtime.identity import ENV_LAB_DIR
from runtime.lab import launcher
from runtime.lab.project import DEFAULT_LAB_DIR, find_project_root

OK = "OK"
FAIL = "FAIL"
MIN_PYTHON = (3, 11)
PACKAGES = ["grpcio", "grpcio-health-checking", "protobuf", "pandas", "psutil", "plotly", "ipywidgets", "anywidget"]

Check = Callable[[], tuple[str, str]]


def check_python() -> tuple[str, str]:
    """Python is new enough."""
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= MIN_PYTHON:
        return OK, f"Python {version}"
    return FAIL, f"Python {version}; the lab needs {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+"


def check_package(name: str) -> Check:
    """A check that ``name`` is installed (it names the install command when not)."""

    def check() -> tuple[str, str]:
        try:
            return OK, f"{name} {importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            return FAIL, f"{name} is missing; run `make lab` (or pip install -e '.[notebook]')"

    return check


def check_widget_extension() -> tuple[str, str]:
    """JupyterLab's widget extension is installed, so widgets render instead of printing text."""
    if importlib.util.find_spec("jupyterlab_widgets") is None:
        return FAIL, "jupyterlab_widgets is missing: widgets will not render; pip install ipywidgets"
    share = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager"
    if share.is_dir():
        return OK, f"widget extension at {share}"
    return FAIL, f"no widget extension under {share.parent}; reinstall jupyterlab_widgets"


def check_loopback() -> tuple[str, str]:
    """Services can bind 127.0.0.1 on a free port (the lab never uses fixed ports)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    except OSError as err:
        return FAIL, f"cannot bind 127.0.0.1: {err}"
    return OK, f"127.0.0.1 free ports available (got {port})"


def check_toolchain(tool: str, purpose: str) -> Check:
    """A check that ``tool`` is on PATH (optional parts of the lab say so, they do not fail)."""

    def check() -> tuple[str, str]:
        path = shutil.which(tool)
        return (OK, f"{tool} at {path}") if path else (OK, f"{tool} not found: {purpose} will be skipped")

    return check


def check_stale_lab() -> tuple[str, str]:
    """No lab processes of this project are left over from a crashed session."""
    try:
        lab_dir = find_project_root() / DEFAULT_LAB_DIR
    except Exception as err:  # noqa: BLE001 - report any setup problem as a failed check
        return FAIL, str(err)
    info = launcher.read_info(lab_dir)
    if info is None:
        return OK, f"no lab running in {lab_dir}"
    if launcher.probe(info) is not None:
        return OK, f"a lab is running in {lab_dir} (supervisor pid {info.pid}); notebooks will attach to it"
    orphans = _orphans(lab_dir)
    if orphans:
        return FAIL, f"stale lab processes (pids {orphans}) without a supervisor; stop them: kill {' '.join(map(str, orphans))}"
    return OK, f"stale {launcher.INFO_FILE} in {lab_dir} (no process left); the next Lab.up() replaces it"


def _orphans(lab_dir: Path) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.path.realpath(proc.environ().get(ENV_LAB_DIR, "/nonexistent")) == str(lab_dir.resolve()):
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def run_checks() -> pd.DataFrame:
    """Run every check; one row each: check, status (OK/FAIL), detail."""
    checks: list[tuple[str, Check]] = [
        ("python", check_python),
        *((f"package {p}", check_package(p)) for p in PACKAGES),
        ("widget extension", check_widget_extension),
        ("loopback ports", check_loopback),
        ("stale lab processes", check_stale_lab),
        ("node (TypeScript calculator)", check_toolchain("node", "the TypeScript server and client")),
        ("cargo (Rust client)", check_toolchain("cargo", "the Rust client")),
        ("cmake (C++ client)", check_toolchain("cmake", "the C++ client")),
    ]
    rows = []
    for name, check in checks:
        status, detail = check()
        rows.append({"check": name, "status": status, "detail": detail})
    return pd.DataFrame(rows, columns=["check", "status", "detail"])
