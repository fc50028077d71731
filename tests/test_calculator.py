"""The Python calculator: number formatting, the server's answers and logs, the client library and job."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from service_process import ROOT, ServiceProcess, start_service, stop_all

from calculator.client import CalculatorClient
from calculator.numbers import call_text, compute, fmt
from calculator.v1 import calculator_pb2, calculator_pb2_grpc
from runtime.errors import ClientError

WAIT_S = 5.0
JOB_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """One broker and one calculator registered with it, shared by this module's tests."""
    lab_dir = tmp_path_factory.mktemp("calc-lab")
    broker = start_service("runtime.services.broker", lab_dir, service="broker", instance="broker-1")
    calc = start_service(
        "calculator.server", lab_dir, service="calculator", instance="calculator-1", broker=broker.address
    )
    yield broker, calc
    stop_all([calc, broker])


def json_lines(lines) -> list[dict]:
    out = []
    for line in lines:
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_numbers_are_formatted_like_every_language() -> None:
    assert [fmt(2.0), fmt(2.5), fmt(-3.0), fmt(0.1 + 0.2), fmt(-0.0)] == [
        "2",
        "2.5",
        "-3",
        "0.30000000000000004",
        "0",
    ]
    assert fmt(float("inf")) == "inf"
    assert call_text("Add", 2, 3) == "Add(2,3)"
    assert [compute(op, 6, 3) for op in ("Add", "Subtract", "Multiply", "Divide")] == [9, 3, 18, 2]
    with pytest.raises(ZeroDivisionError):
        compute("Divide", 1, 0)


def test_server_answers_and_logs_with_correlation_id(tmp_path: Path) -> None:
    """Without a broker the agent writes JSON log lines on stderr: the server's own log is visible."""
    calc = start_service("calculator.server", tmp_path, service="calculator", instance="calculator-7")
    try:
        with grpc.insecure_channel(calc.address) as channel:
            stub = calculator_pb2_grpc.CalculatorServiceStub(channel)
            meta = [("x-correlation-id", "req-123")]
            added = stub.Add(calculator_pb2.AddRequest(a=2, b=3), metadata=meta, timeout=WAIT_S)
            assert added.result == 5
            assert (added.served_by.instance_id, added.served_by.language, added.served_by.service_name) == (
                "calculator-7",
                "python",
                "calculator",
            )
            assert stub.Subtract(calculator_pb2.SubtractRequest(a=2, b=3), timeout=WAIT_S).result == -1
            assert stub.Multiply(calculator_pb2.MultiplyRequest(a=2.5, b=4), timeout=WAIT_S).result == 10
            assert stub.Divide(calculator_pb2.DivideRequest(a=5, b=2), timeout=WAIT_S).result == 2.5
            with pytest.raises(grpc.RpcError) as info:
                stub.Divide(calculator_pb2.DivideRequest(a=1, b=0), metadata=meta, timeout=WAIT_S)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert info.value.details() == "division by zero"
        calc.wait_for_line("Divide(1,0)")
        logged = {entry["message"]: entry for entry in json_lines(calc.lines)}
        assert logged["Add(2,3) = 5"]["level"] == "INFO"
        assert logged["Add(2,3) = 5"]["correlation_id"] == "req-123"
        assert "Multiply(2.5,4) = 10" in logged
        assert "Divide(5,2) = 2.5" in logged
        warning = next(e for m, e in logged.items() if m.startswith("Divide(1,0)"))
        assert warning["level"] == "WARN" and "division by zero" in warning["message"]
    finally:
        calc.stop()


def test_client_library(lab, caplog: pytest.LogCaptureFixture) -> None:
    broker, _ = lab
    caplog.set_level(logging.INFO, logger="calculator.client")
    with CalculatorClient(broker.address) as client:
        assert client.add(2, 3, correlation_id="req-123") == 5
        assert client.last_served_by == ("calculator-1", "python")
        assert client.divide(7, 2) == 3.5
        with pytest.raises(ClientError) as info:
            client.divide(1, 0)
        assert info.value.code == "INVALID_ARGUMENT"
        assert str(info.value) == "INVALID_ARGUMENT: division by zero"
    messages = [r.getMessage() for r in caplog.records if r.name == "calculator.client"]
    assert messages[:3] == ["Calling Add(2,3)", "Result: 5", "python client called python server"]
    # The lookup carried the client's correlation id: the broker logged it with that id.
    line = broker.wait_for_line('"Lookup CalculatorService"')
    assert json.loads(line)["correlation_id"] == "req-123"


def run_job(*args: str, broker: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update(LAB_BROKER_ADDR=broker, LAB_INSTANCE="client-python-1", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "calculator.client", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_S,
    )


def test_job_json_lines_and_exit_codes(lab) -> None:
    broker, _ = lab
    ok = run_job("add", "2", "3", "--correlation-id", "req-123", broker=broker.address)
    assert ok.returncode == 0, ok.stderr
    lines = json_lines(ok.stdout.splitlines())
    assert len(lines) == len(ok.stdout.splitlines()), "every stdout line is one JSON object"
    assert [line["message"] for line in lines] == [
        "Calling Add(2,3)",
        "Result: 5",
        "python client called python server",
    ]
    for line in lines:
        assert {"ts", "level", "message", "correlation_id", "service", "instance"} <= set(line)
        assert (line["level"], line["correlation_id"]) == ("INFO", "req-123")
        assert (line["service"], line["instance"]) == ("client-python", "client-python-1")
    final = lines[1]
    assert final["result"] == 5 and isinstance(final["result"], int)
    assert final["served_by"] == {
        "instance_id": "calculator-1",
        "language": "python",
        "service_name": "calculator",
    }
    assert final["elapsed_ms"] > 0

    failed = run_job("divide", "1", "0", broker=broker.address)
    assert failed.returncode == 1
    error = json_lines(failed.stdout.splitlines())[-1]
    assert (error["level"], error["message"], error["grpc_code"]) == (
        "ERROR",
        "INVALID_ARGUMENT: division by zero",
        "INVALID_ARGUMENT",
    )

    for bad in (["add", "2"], ["power", "2", "3"]):
        usage = run_job(*bad, broker=broker.address)
        assert usage.returncode == 2
        error = json_lines(usage.stdout.splitlines())[-1]
        assert error["level"] == "ERROR" and "usage: python -m calculator.client" in error["message"]
    unset = run_job("add", "2", "3", broker="")
    assert unset.returncode == 2
    assert "LAB_BROKER_ADDR is not set" in json_lines(unset.stdout.splitlines())[-1]["message"]


def test_job_with_no_registered_server(tmp_path: Path) -> None:
    broker = start_service("runtime.services.broker", tmp_path, service="broker", instance="broker-1")
    try:
        failed = run_job("add", "1", "2", broker=broker.address)
    finally:
        broker.stop()
    assert failed.returncode == 1
    error = json_lines(failed.stdout.splitlines())[-1]
    assert error["grpc_code"] == "NOT_FOUND"
    assert error["message"].startswith("NOT_FOUND: no instances of calculator.v1.CalculatorService")


def test_job_without_reachable_broker() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    failed = run_job("add", "2", "3", "--timeout-s", "2", broker=address)
    assert failed.returncode == 1
    error = json_lines(failed.stdout.splitlines())[-1]
    assert error["grpc_code"] == "UNAVAILABLE"
    assert error["message"].startswith("UNAVAILABLE: broker at " + address)
