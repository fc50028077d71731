"""The daemon writes bytecode for the lab's own packages once the lab has started.

With PYTHONDONTWRITEBYTECODE set (as on some machines) Python would compile every module of the
agent from source in every service at every start; bytecode written by the daemon is read instead.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from procs.labd import CHILD, LabDaemon, wait_until, write_lab

from runtime.supervisor.bytecode import compile_packages, python_packages
from runtime.supervisor.config import parse_config
from runtime.v1 import supervisor_pb2 as pb


def make_package(root: Path, name: str) -> Path:
    """``root/name`` as a package whose ``python -m name`` runs the tests' child service."""
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VALUE = 1\n")
    (pkg / "__main__.py").write_text(f"import runpy\nrunpy.run_path({str(CHILD)!r}, run_name='__main__')\n")
    return pkg


def test_packages_of_python_commands() -> None:
    cfg = parse_config(
        {
            "services": {
                "a": {"command": ["python", "-m", "calculator.server"]},
                "b": {"command": ["node", "x.js"]},
            },
            "jobs": {"c": {"command": ["python", "-m", "tools.client", "-v"]}},
        },
        "/p/lab.yaml",
    )
    assert python_packages(cfg) == ["calculator", "runtime", "tools"]


def test_compile_packages_writes_bytecode_and_skips_what_is_not_a_package(tmp_path: Path) -> None:
    pkg = make_package(tmp_path, "mypkg")
    (tmp_path / "notapkg").mkdir()
    assert compile_packages(str(tmp_path), ["mypkg", "notapkg", "missing"])
    assert Path(importlib.util.cache_from_source(str(pkg / "__init__.py"))).is_file()
    assert not (tmp_path / "notapkg" / "__pycache__").exists()


def test_daemon_writes_bytecode_once_its_services_run(
    tmp_path: Path, lab_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = make_package(tmp_path, "mypkg")
    config = write_lab(tmp_path, {"svc": {"command": ["python", "-m", "mypkg"]}})
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # the service's own imports write nothing
    daemon = LabDaemon(lab_dir, config).start()
    try:
        daemon.wait_state("svc-1", pb.PROCESS_STATE_RUNNING)
        pyc = Path(importlib.util.cache_from_source(str(pkg / "__init__.py")))
        wait_until(pyc.is_file, 10.0, f"{pyc} written by the daemon")
    finally:
        daemon.stop()
