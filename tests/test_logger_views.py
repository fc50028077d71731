"""The Lab's log part (runtime.lab.logs) against a real logger: frames, tail, trace, export."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest
from logprocs import Child, wait_for

from runtime.errors import ClientError, UsageError
from runtime.lab import logs as lab_logs
from runtime.lab.connection import Connection
from runtime.v1 import logger_pb2 as pb
from runtime.v1 import logger_pb2_grpc


@pytest.fixture
def channel(lab_dir):
    logger = Child("runtime.services.logger", lab_dir, service="logger")
    ch = grpc.insecure_channel(logger.address)
    yield ch
    ch.close()
    logger.stop()


def logs_part(channel: grpc.Channel) -> lab_logs.Logs:
    """The part as the Lab holds it (``lab.logs``), over a connection that only reaches the logger."""

    def only_the_logger(grpc_service: str) -> grpc.Channel:
        assert grpc_service == "runtime.v1.LoggerService"
        return channel

    return lab_logs.Logs(Connection(channel=only_the_logger, broker_address=lambda: "", lab_dir=Path(".")))


def put(channel: grpc.Channel, *entries: pb.LogEntry) -> None:
    logger_pb2_grpc.LoggerServiceStub(channel).StreamLogs(iter([pb.LogEntry(batch=entries)]), timeout=10)


def entry(service: str, message: str, level: int = pb.INFO, cid: str = "", t_us: int = 0) -> pb.LogEntry:
    t_us = t_us or time.time_ns() // 1000
    return pb.LogEntry(
        service_name=service, instance_id=f"{service}-1", message=message, level=level,  # type: ignore[arg-type]
        correlation_id=cid, timestamp=t_us // 1000, timestamp_us=t_us,
    )  # fmt: skip


def test_logs_filters_and_columns(channel):
    views = logs_part(channel)
    put(
        channel,
        entry("calculator", "Add(2,3) = 5"),
        entry("calculator", "Divide(1,0) rejected: division by zero", pb.WARN),
        entry("broker", "Lookup CalculatorService"),
    )
    df = views()
    assert list(df.columns) == lab_logs.COLUMNS and len(df) == 3
    assert str(df["time"].dtype).startswith("datetime64")
    problems = views(service="calculator", level="WARN")
    assert list(problems["message"]) == ["Divide(1,0) rejected: division by zero"]
    assert list(problems["level"]) == ["WARN"]
    assert list(views(search="lookup")["service"]) == ["broker"]
    assert list(views(limit=2)["service"]) == ["calculator", "broker"]  # the newest two, oldest first
    assert views(since=time.time() + 60).empty
    with pytest.raises(UsageError, match="unknown log level 'LOUD'"):
        views(level="LOUD")
    with pytest.raises(UsageError, match="is no time"):
        views(since="yesterday-ish")
    with pytest.raises(ClientError) as err:  # the logger refuses it: INVALID_ARGUMENT, as a LabError
        views(service="")
    assert err.value.code == "INVALID_ARGUMENT"


def test_trace_orders_one_request_by_time(channel):
    t = time.time_ns() // 1000
    # Arrival order differs from time order: the trace follows time.
    put(channel, entry("calculator", "Add(2,3) = 5", cid="req-123", t_us=t + 300))
    put(
        channel,
        entry("notebook", "Result: 5", cid="req-123", t_us=t + 400),
        entry("notebook", "Calling Add(2,3)", cid="req-123", t_us=t + 100),
        entry("broker", "Lookup CalculatorService", cid="req-123", t_us=t + 200),
        entry("notebook", "Calling Add(9,9)", cid="req-999", t_us=t + 150),
    )
    flow = logs_part(channel).trace("req-123")
    assert list(flow["message"]) == [
        "Calling Add(2,3)",
        "Lookup CalculatorService",
        "Add(2,3) = 5",
        "Result: 5",
    ]
    with pytest.raises(UsageError, match="correlation id"):
        logs_part(channel).trace("")


def test_tail_is_live_when_it_returns_and_stops(channel):
    rows: list[dict] = []
    tail = logs_part(channel).tail(rows.append, service="calculator", level="WARN")
    assert tail.live.is_set()
    put(
        channel,
        entry("calculator", "slow answer", pb.WARN),
        entry("calculator", "fine"),
        entry("broker", "x", pb.ERROR),
    )
    wait_for(lambda: rows, 5, "the tailed row")
    tail.stop()
    assert not tail.running
    assert [(r["service"], r["level"], r["message"], r["dropped"]) for r in rows] == [
        ("calculator", "WARN", "slow answer", 0)
    ]
    with pytest.raises(ClientError, match="refused this tail: empty service name") as err:
        logs_part(channel).tail(rows.append, service="")
    assert err.value.code == "INVALID_ARGUMENT"
    with pytest.raises(UsageError, match="unknown filters"):
        logs_part(channel).tail(rows.append, color="red")


def test_export_writes_ndjson(channel, tmp_path):
    put(
        channel, entry("calculator", "Add(2,3) = 5", cid="req-1"), entry("broker", "Lookup CalculatorService")
    )
    path = tmp_path / "logs.ndjson"
    assert logs_part(channel).export(str(path)) == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(o["service"], o["message"], o["correlation_id"]) for o in lines] == [
        ("calculator", "Add(2,3) = 5", "req-1"),
        ("broker", "Lookup CalculatorService", ""),
    ]
