"""The tier rules themselves: what counts as starting a process, and the run-time guard."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
from tiers import ProcessGuard, ProcessStartedOutsideIntegration, starts_processes

from runtime.lab import Lab


def _item(func, fixtures: dict | None = None, params: list | None = None) -> SimpleNamespace:
    """Just what starts_processes reads from a pytest item (``params``: of every fixture)."""
    defs = {name: [SimpleNamespace(func=f, params=params)] for name, f in (fixtures or {}).items()}
    return SimpleNamespace(
        obj=func, fixturenames=list(defs), _fixtureinfo=SimpleNamespace(name2fixturedefs=defs)
    )


def _spawn_helper() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


class _Helper:
    def start(self) -> None:
        _spawn_helper()


def _pure(values: list[int]) -> int:
    return sorted(values)[0]


def test_a_test_that_reaches_a_process_start_through_helpers_is_integration() -> None:
    assert starts_processes(_item(lambda: _spawn_helper()))
    assert starts_processes(_item(lambda: _Helper().start()))
    assert starts_processes(_item(lambda: Lab.up()))  # the Lab facade starts a daemon
    assert starts_processes(_item(lambda: None, {"lab_factory": lambda: None}))  # a process fixture
    assert starts_processes(_item(lambda: None, {"calc": lambda: _Helper()}))  # through a fixture


def test_pure_code_and_imports_inside_a_function_are_read_right() -> None:
    assert not starts_processes(_item(lambda: _pure([3, 1, 2])))

    def imports_inside() -> None:
        import subprocess as sp

        sp.run(["true"], check=False)

    assert starts_processes(_item(imports_inside))


def test_a_fixture_that_marks_its_process_params_itself_is_left_to_those_marks() -> None:
    backend = {"store_backend": lambda: _Helper().start()}  # starts a process for one param only
    per_param = ["local", pytest.param("etcd", marks=pytest.mark.integration)]
    assert not starts_processes(_item(lambda: None, backend, per_param))
    assert starts_processes(_item(lambda: None, backend, ["local", "etcd"]))


def test_the_guard_refuses_a_process_start_while_armed_and_remembers_it() -> None:
    guard = ProcessGuard()
    guard.enter("tests/test_x.py::test_y")
    try:
        with pytest.raises(ProcessStartedOutsideIntegration, match="test_y started a process .*integration"):
            subprocess.Popen([sys.executable, "-c", "pass"])  # refused before the fork
        assert len(guard.violations) == 1
    finally:
        guard.enter(None)
    assert guard.violations == []
