"""Logs in a whole lab: the supervisor forwards every output line; req-123 through the Lab API.

These need the supervisor daemon to forward its children's output to a LogShipper (the
``on_output`` seam, see runtime/supervisor/output.py OutputTap and runtime/client/logship.py).
"""

from __future__ import annotations

import pytest

from calculator.lab import CalculatorLab
from runtime.agent import log_handler
from runtime.lab import Lab

WAIT_S = 15.0


@pytest.fixture
def lab(lab_factory) -> Lab:
    return lab_factory("logger")


def test_req_123_through_the_lab_api(lab):
    handler = CalculatorLab(lab).ship_client_logs()
    try:
        assert CalculatorLab(lab).client().add(2, 3, correlation_id="req-123") == 5
        _check_flow(lab)
    finally:
        log_handler.uninstall_for_client(handler)


def _check_flow(lab: Lab) -> None:
    def flow() -> list[tuple[str, str]]:
        return [tuple(r) for r in lab.logs.trace("req-123")[["service", "message"]].values.tolist()]

    def complete() -> bool:
        services = [s for s, _ in flow()]
        return "broker" in services and "calculator" in services and services.count("notebook") >= 2

    lab.wait_for(complete, timeout_s=WAIT_S, what="req-123 from notebook, broker and calculator")
    steps = [s for s, m in flow() if not m.startswith("python client called")]
    assert steps == ["notebook", "broker", "calculator", "notebook"], flow()


def test_output_lines_are_forwarded_and_replayed_across_a_logger_restart(lab):
    # The broker has no broker to ship to: its JSON lines on stderr reach the logger only
    # through the supervisor, with their level kept.
    lab.wait_for(
        lambda: len(lab.logs(service="broker", search="Registered calculator")) > 0,
        timeout_s=WAIT_S,
        what="the broker's registration line",
    )
    assert set(lab.logs(service="broker")["level"]) <= {"INFO", "WARN", "ERROR"}
    # Kill the logger: its successor's READY line is printed while no logger runs, so the
    # supervisor's shipper must keep it and replay it.
    lab.kill("logger")
    lab.wait_for(
        lambda: _count(lab, service="logger", search="READY port") >= 2,
        timeout_s=WAIT_S,
        what="both loggers' READY lines",
    )


def _count(lab: Lab, **filters: object) -> int:
    try:
        return len(lab.logs(**filters))  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - the logger is restarting
        return 0
