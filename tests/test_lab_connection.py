"""The Lab API's shared rules, without a lab: one gRPC error mapping, usage errors, names.

A failed call becomes a LabError subclass chosen by its status code only (runtime/lab/connection.py);
a learner's mistake is a UsageError raised before anything is sent (connection.message,
runtime/lab/names.py). A real channel to a port nobody listens on stands for a stopped service.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import grpc
import pytest

from runtime.errors import ClientError, LabError, ServiceNotFound, ServiceUnavailable, UsageError
from runtime.lab.chaos import Chaos
from runtime.lab.config import Config
from runtime.lab.connection import Connection, message, rpc_error
from runtime.lab.health import Health
from runtime.lab.load import Load
from runtime.lab.logs import Logs
from runtime.lab.names import instance_id, signal_name
from runtime.lab.state import State
from runtime.v1 import load_pb2


class Failed(grpc.RpcError):
    """A failed call as grpc raises it: code() and details()."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("code", "kind", "code_name"),
    [
        (grpc.StatusCode.NOT_FOUND, ServiceNotFound, None),
        (grpc.StatusCode.UNAVAILABLE, ServiceUnavailable, None),
        (grpc.StatusCode.INVALID_ARGUMENT, ClientError, "INVALID_ARGUMENT"),
        (grpc.StatusCode.FAILED_PRECONDITION, ClientError, "FAILED_PRECONDITION"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ClientError, "RESOURCE_EXHAUSTED"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, ClientError, "DEADLINE_EXCEEDED"),
    ],
)
def test_the_status_code_alone_picks_the_error(code, kind, code_name) -> None:
    err = rpc_error(Failed(code, "no lab service named 'x'"), "chaos service", "injecting a fault")
    assert type(err) is kind and isinstance(err, LabError)
    assert "injecting a fault: " in str(err)
    if code_name:
        assert err.code == code_name and err.message == "injecting a fault: no lab service named 'x'"
    if kind is ServiceUnavailable:
        assert "the chaos service does not answer" in str(err) and "lab.status()" in str(err)


def test_not_found_of_a_key_is_a_client_error_and_an_empty_what_adds_no_prefix() -> None:
    err = rpc_error(Failed(grpc.StatusCode.NOT_FOUND, "demo/missing is not set"), "config service", "",
                    not_found=None)  # fmt: skip
    assert (
        type(err) is ClientError
        and err.code == "NOT_FOUND"
        and str(err) == "NOT_FOUND: demo/missing is not set"
    )


def test_a_value_of_the_wrong_type_is_a_usage_error_that_names_the_call() -> None:
    with pytest.raises(UsageError) as info:
        message(
            load_pb2.LoadConfig,
            "load on 'calculator'",
            target_service="calculator",
            requests_per_second="100",
        )
    assert (
        str(info.value) == "load on 'calculator': requests_per_second='100' is a str; it takes a whole number"
    )
    assert isinstance(info.value, ValueError)
    with pytest.raises(UsageError) as info:  # long input is quoted cut, not echoed whole
        message(load_pb2.LoadConfig, "load", target_service=["x" * 5000])
    assert len(str(info.value)) < 300 and "(5004 characters)" in str(info.value), str(info.value)
    assert str(info.value).endswith("is a list; it takes text")


def test_names_a_learner_may_use() -> None:
    assert instance_id("calculator", 2) == "calculator-2"
    assert instance_id("calculator", "calculator-1") == "calculator-1"
    assert instance_id("calculator", None) == ""
    assert signal_name(9) == "SIGKILL" and signal_name("SIGSTOP") == "SIGSTOP"
    for bad in (1.5, True, [1]):
        with pytest.raises(UsageError, match="instance must be a name like 'calculator-1'"):
            instance_id("calculator", bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="12345 is not a signal number"):
        signal_name(12345)


@pytest.fixture
def nobody_listens() -> Iterator[grpc.Channel]:
    """A channel to a loopback port that was free a moment ago: every call is UNAVAILABLE."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    channel.close()


def test_every_part_reports_a_stopped_service_as_service_unavailable(nobody_listens) -> None:
    conn = Connection.single(nobody_listens)
    calls = {
        "health service": lambda: Health(conn)(),
        "logger": lambda: Logs(conn)(service="calculator"),
        "load generator": lambda: Load(conn).tests(),
        "chaos service": lambda: Chaos(conn).faults(),
        "config service": lambda: Config(conn).values("calculator"),
        "state service": lambda: State(conn).get("counter"),
    }
    for service, call in calls.items():
        with pytest.raises(ServiceUnavailable, match=f"the {service} does not answer"):
            call()


def test_usage_errors_come_before_the_service_is_asked(nobody_listens) -> None:
    conn = Connection.single(nobody_listens)
    with pytest.raises(UsageError, match="unknown fault kind 'slowness'"):
        Chaos(conn).inject("calculator", "slowness")
    with pytest.raises(UsageError, match="DELAY takes delay_ms="):
        Chaos(conn).inject("calculator", "delay", delay=5)
    with pytest.raises(UsageError, match="a DELAY fault for 'calculator'"):
        Chaos(conn).inject("calculator", "delay", delay_ms="500")
    with pytest.raises(UsageError, match="load on 'calculator'"):
        Load(conn).start("calculator", rps="100")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="unknown log level 'LOUD'"):
        Logs(conn)(level="LOUD")
    with pytest.raises(UsageError, match="correlation id"):
        Logs(conn).trace("")
    with pytest.raises(UsageError, match="unknown filters"):
        Logs(conn).tail(print, colour="red")
