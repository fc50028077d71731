"""The log shipper against a real broker and logger: replay across restarts, drops, flush."""

from __future__ import annotations

import json
import threading
import time

import grpc
import pytest
from logprocs import Child, wait_for

from runtime.client.jsonlog import format_line, parse_line
from runtime.client.logship import LogShipper, entry_from_output
from runtime.v1 import logger_pb2 as pb
from runtime.v1 import logger_pb2_grpc

RPC_S = 10.0


@pytest.fixture
def broker(lab_dir):
    child = Child("runtime.services.broker", lab_dir, service="broker")
    yield child
    child.stop()


def start_logger(lab_dir, broker: Child) -> Child:
    return Child("runtime.services.logger", lab_dir, service="logger", broker=broker.address)


def stored_messages(address: str, **query: object) -> list[str]:
    with grpc.insecure_channel(address) as ch:
        stub = logger_pb2_grpc.LoggerServiceStub(ch)
        return [e.message for e in stub.QueryLogs(pb.LogQuery(limit=100_000, **query), timeout=RPC_S)]  # type: ignore[arg-type]


def test_plain_lines_are_info_on_stdout_and_warn_on_stderr():
    out = entry_from_output("calculator", "calculator-1", 42, "stdout", 1000, "READY port=5\n")
    err = entry_from_output(
        "calculator", "calculator-1", 42, "stderr", 1001, "Traceback (most recent call last):"
    )
    assert (out.level, out.message, out.timestamp, out.source) == (pb.INFO, "READY port=5", 1000, "stdout")
    assert (err.level, err.service_name, err.instance_id) == (pb.WARN, "calculator", "calculator-1")
    assert dict(err.metadata) == {"pid": "42", "stream": "stderr"}


def test_json_lines_keep_level_message_correlation_and_fields():
    line = json.dumps(
        {"ts": 1234, "level": "ERROR", "message": "Result: 5", "correlation_id": "req-123",
         "service": "calculator-client-rust", "instance": "client-rust-1", "peer": "calculator-2", "n": 3}
    )  # fmt: skip
    e = entry_from_output("client-rust", "client-rust-1", 7, "stdout", 9999, line)
    assert (e.level, e.message, e.correlation_id, e.timestamp) == (pb.ERROR, "Result: 5", "req-123", 1234)
    assert e.service_name == "client-rust"
    assert e.metadata["peer"] == "calculator-2" and e.metadata["n"] == "3"
    assert e.metadata["logged_service"] == "calculator-client-rust"
    # Unknown level: kept visible as metadata, the entry falls back to the stream's level.
    odd = entry_from_output("x", "x-1", 1, "stderr", 5, '{"level": "LOUD", "message": "hi"}')
    assert (odd.level, odd.metadata["level"], odd.timestamp) == (pb.WARN, "LOUD", 5)
    # Braces that are not a JSON object stay a plain line.
    assert entry_from_output("x", "x-1", 1, "stdout", 5, "{not json}").message == "{not json}"


def test_close_flushes_everything_through_the_broker(lab_dir, broker):
    logger = start_logger(lab_dir, broker)
    try:
        shipper = LogShipper(broker.address, name="test")
        for i in range(3000):
            shipper.emit(
                pb.LogEntry(service_name="svc", instance_id="svc-1", message=f"flush {i}", timestamp=i + 1)
            )
        assert shipper.close(timeout_s=10)
        assert shipper.stats.shipped == 3000 and shipper.stats.dropped == 0
        got = stored_messages(logger.address, service_names=["svc"])
        assert sorted(got) == sorted(f"flush {i}" for i in range(3000))
    finally:
        logger.stop()


def test_no_line_lost_across_a_logger_restart(lab_dir, broker):
    logger = start_logger(lab_dir, broker)
    shipper = LogShipper(broker.address, name="supervisor")
    n = 3000
    sent = threading.Event()

    def produce() -> None:
        for i in range(n):
            shipper.on_output(
                "calculator", "calculator-1", 4242, "stdout", int(time.time() * 1000), f"line {i}\n"
            )
            if i % 100 == 0:
                time.sleep(0.01)
        sent.set()

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_for(lambda: shipper.stats.shipped >= 500, 15, "500 lines shipped before the kill")
        logger.kill()
        time.sleep(0.5)  # lines keep coming while no logger runs
        logger = start_logger(lab_dir, broker)
        producer.join(30)
        assert sent.is_set()
        assert shipper.flush(timeout_s=30), f"shipper could not flush: {shipper.stats}"
        assert shipper.stats.reconnects >= 1 and shipper.stats.dropped == 0
        got = set(stored_messages(logger.address, service_names=["calculator"]))
        missing = [f"line {i}" for i in range(n) if f"line {i}" not in got]
        assert missing == [], f"{len(missing)} lines lost across the restart, e.g. {missing[:5]}"
    finally:
        shipper.close(timeout_s=2)
        logger.stop()


def test_overflow_drops_oldest_counts_and_reports(lab_dir, broker):
    # No logger yet: the shipper buffers; its buffer holds 100, so 150 of 250 are dropped.
    shipper = LogShipper(broker.address, name="kernel", buffer_max=100)
    t0 = time.monotonic()
    for i in range(250):
        shipper.emit(
            pb.LogEntry(service_name="notebook", instance_id="nb", message=f"early {i}", timestamp=i + 1)
        )
    assert time.monotonic() - t0 < 0.5, "emit() must never wait for the logger"
    wait_for(lambda: shipper.stats.reconnects >= 1, 10, "a failed lookup")
    assert shipper.stats.dropped == 150
    logger = start_logger(lab_dir, broker)
    try:
        assert shipper.flush(timeout_s=20), f"shipper could not flush: {shipper.stats}"
        got = stored_messages(logger.address, service_names=["notebook"])
        assert got == [f"early {i}" for i in range(150, 250)], "the newest 100 survive, in order"
        report = stored_messages(logger.address, service_names=["kernel"], min_level=pb.WARN)
        assert report == [
            "log shipper kernel dropped 150 entries: its buffer of 100 was full while the logger was unreachable"
        ]
    finally:
        shipper.close(timeout_s=2)
        logger.stop()


def test_close_does_not_hang_when_the_logger_is_gone(broker):
    shipper = LogShipper(broker.address, name="stopping")
    shipper.emit(pb.LogEntry(service_name="svc", message="last words", timestamp=1))
    wait_for(lambda: not shipper.reachable, 10, "the failed lookup")
    t0 = time.monotonic()
    assert shipper.close(timeout_s=5) is False
    assert time.monotonic() - t0 < 1.5, "a stopping process must not wait long for a logger that is gone"
    assert shipper.stats.dropped == 1
    assert shipper.close() is False  # twice is fine (logging.shutdown closes handlers again)


def test_json_line_contract_round_trip():
    line = format_line(
        "Calling Add(2,3)", level="WARNING", correlation_id="req-1", service="client", peer="x"
    )
    parsed = parse_line(line)
    assert parsed is not None
    assert (parsed["message"], parsed["level"], parsed["correlation_id"]) == (
        "Calling Add(2,3)",
        pb.WARN,
        "req-1",
    )
    assert parsed["fields"] == {"peer": "x"} and parsed["ts_us"] // 1000 == parsed["ts"]
    assert parse_line('{"msg": "pino style", "level": 30}')["level"] is None  # numeric pino levels: unknown
    assert parse_line("[1, 2]") is None and parse_line('{"no": "message"}') is None
