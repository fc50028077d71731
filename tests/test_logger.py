"""The logger service over real gRPC: bad input, truncation, tails (in-process), SIGKILL (a real process)."""

from __future__ import annotations

import sqlite3
import threading
import time

import grpc
import pytest
from logprocs import Child, wait_for
from waiting import wait_until

from runtime.identity import LOGS_DB_FILE
from runtime.services.logger.servicer import LoggerService
from runtime.services.logger.store import LogStore
from runtime.v1 import logger_pb2 as pb
from runtime.v1 import logger_pb2_grpc

RPC_S = 10.0
RING_SIZE = 50  # small, so the query test reads from the ring and from SQLite


class InProcessLogger:
    """The logger's servicer served in this process (the SIGKILL test below runs the real process)."""

    def __init__(self, aio_server, lab_dir) -> None:
        def add(server) -> None:
            self.service = LoggerService(LogStore(str(lab_dir), ring_size=RING_SIZE))
            logger_pb2_grpc.add_LoggerServiceServicer_to_server(self.service, server)

        self.server = aio_server(add)
        self.address = self.server.address

    def wait_subscribers(self, n: int) -> None:
        """Until ``n`` SubscribeLogs calls are registered (entries sent earlier are not tailed)."""
        wait_until(lambda: len(self.service.subs) >= n, 5, f"{n} subscriptions registered at the logger")

    def stop(self) -> None:
        self.server.stop()
        self.service.close()


@pytest.fixture
def logger(aio_server, lab_dir):
    server = InProcessLogger(aio_server, lab_dir)
    yield server
    server.stop()


@pytest.fixture
def stub(logger):
    with grpc.insecure_channel(logger.address) as ch:
        yield logger_pb2_grpc.LoggerServiceStub(ch)


def entries(n: int, prefix: str = "line", **kw: object) -> list[pb.LogEntry]:
    now = int(time.time() * 1000)
    base = dict(service_name="calculator", instance_id="calculator-1", level=pb.INFO, timestamp=now)
    base.update(kw)
    return [pb.LogEntry(message=f"{prefix} {i}", **base) for i in range(n)]  # type: ignore[arg-type]


def send(stub, batch: list[pb.LogEntry], carrier: int = 200) -> pb.LogAck:
    return stub.StreamLogs(
        (pb.LogEntry(batch=batch[i : i + carrier]) for i in range(0, len(batch), carrier)), timeout=RPC_S
    )


def drain(call, sink: list) -> threading.Thread:
    """Read a server stream into ``sink`` on a thread until it is cancelled."""

    def run() -> None:
        try:
            for item in call:
                sink.append(item)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def query_with_source(stub, q: pb.LogQuery) -> tuple[list[pb.LogEntry], str]:
    call = stub.QueryLogs(q, timeout=RPC_S)
    found = list(call)
    return found, dict(call.trailing_metadata())["x-log-source"]


def invalid(call) -> str:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
    return err.value.details()


def test_bad_queries_and_entries_are_invalid_argument(stub):
    assert "unknown log level 9" in invalid(
        lambda: list(stub.QueryLogs(pb.LogQuery(min_level=9), timeout=RPC_S))
    )
    assert "before start time" in invalid(
        lambda: list(stub.QueryLogs(pb.LogQuery(start_time=2000, end_time=1000), timeout=RPC_S))
    )
    assert "empty service name" in invalid(
        lambda: list(stub.QueryLogs(pb.LogQuery(service_names=["calculator", ""]), timeout=RPC_S))
    )
    assert "unknown log level 7" in invalid(
        lambda: next(stub.SubscribeLogs(pb.LogFilter(min_level=7), timeout=RPC_S))
    )
    assert "empty service name" in invalid(
        lambda: next(stub.SubscribeLogs(pb.LogFilter(service_names=[""]), timeout=RPC_S))
    )
    bad_level = entries(3)
    bad_level[2].level = 12  # type: ignore[assignment]
    assert "entry 3 of this stream has unknown level 12" in invalid(lambda: send(stub, bad_level))
    assert "empty service_name" in invalid(lambda: send(stub, entries(1, service_name="")))


def test_stream_acks_and_query_reads_ring_then_sqlite(stub):
    ack = send(stub, entries(200, level=pb.INFO) + entries(5, "boom", level=pb.ERROR))
    assert ack.accepted == 205 and ack.last_sequence == 205 and ack.truncated == 0
    found, source = query_with_source(stub, pb.LogQuery(min_level=pb.ERROR))
    assert [e.message for e in found] == [f"boom {i}" for i in range(5)]
    assert source == "sqlite"  # the ring holds 50: older entries exist outside it
    page, source = query_with_source(stub, pb.LogQuery(limit=10, newest_first=True))
    assert source == "ring"
    assert [e.sequence for e in page] == list(range(205, 195, -1))
    hits = list(stub.QueryLogs(pb.LogQuery(search_text="line 17"), timeout=RPC_S))
    assert [e.message for e in hits] == ["line 17", "line 170", "line 171", "line 172", "line 173", "line 174",
                                         "line 175", "line 176", "line 177", "line 178", "line 179"]  # fmt: skip


def test_message_over_64_kib_is_truncated_and_counted(stub):
    ack = send(stub, entries(1, "x" * 100_000) + entries(1, "fine"))
    assert ack.accepted == 2 and ack.truncated == 1
    assert "cut at 64 KiB" in ack.message
    stored = list(stub.QueryLogs(pb.LogQuery(), timeout=RPC_S))
    assert len(stored[0].message.encode()) <= 64 * 1024
    assert stored[0].message.endswith("bytes]") and "…[truncated " in stored[0].message
    assert stored[1].message == "fine 0"


def test_subscribe_gets_matching_entries_live(stub, logger):
    got: list[pb.LogEntry] = []
    call = stub.SubscribeLogs(
        pb.LogFilter(service_names=["calculator"], min_level=pb.WARN, search_text="zero")
    )
    reader = drain(call, got)
    logger.wait_subscribers(1)
    send(stub, entries(3, "division by zero", level=pb.ERROR) + entries(3, "fine", level=pb.ERROR))
    send(
        stub,
        entries(2, "division by zero", level=pb.INFO)
        + entries(2, "zero", service_name="broker", level=pb.WARN),
    )
    # A last matching entry: a tail delivers in order, so once it is here every earlier match is too.
    send(stub, entries(1, "zero, the last", level=pb.ERROR))
    wait_for(lambda: got and got[-1].message == "zero, the last 0", 5, "the last tailed entry")
    call.cancel()
    reader.join(5)
    assert [e.message for e in got] == [
        "division by zero 0", "division by zero 1", "division by zero 2", "zero, the last 0"
    ]  # fmt: skip


def test_slow_subscriber_loses_oldest_and_is_told(stub, logger):
    n, batch = 6000, 300
    # Its own connection: an unread stream would otherwise use up the shared connection window.
    slow_channel = grpc.insecure_channel(logger.address, options=[("grpc.use_local_subchannel_pool", 1)])
    slow = logger_pb2_grpc.LoggerServiceStub(slow_channel).SubscribeLogs(
        pb.LogFilter()
    )  # read only after the burst
    fast_got: list[pb.LogEntry] = []
    fast = stub.SubscribeLogs(pb.LogFilter())
    reader = drain(fast, fast_got)
    logger.wait_subscribers(2)
    t0 = time.monotonic()
    for i in range(0, n, batch):
        send(stub, entries(batch, f"payload {i} " + "y" * 2000))
        time.sleep(0.1)  # ~3k entries/s: a reading subscriber keeps up, the slow one does not
    ingest_s = time.monotonic() - t0
    wait_for(
        lambda: len(fast_got) >= n,
        20,
        f"the fast subscriber to get every entry ({len(fast_got)}, {sum(e.dropped for e in fast_got)})",
    )
    assert [e.sequence for e in fast_got] == list(range(1, n + 1))
    assert all(e.dropped == 0 for e in fast_got)
    received = dropped = 0
    for e in slow:
        received += 1
        dropped += e.dropped
        if e.sequence == n:
            break
    slow.cancel()
    slow_channel.close()
    fast.cancel()
    reader.join(5)
    assert dropped > 0, "the slow subscriber should have lost entries"
    assert received + dropped == n, "every entry is either delivered or counted as dropped"
    assert ingest_s < 10, f"ingestion took {ingest_s:.1f} s: a slow subscriber must not slow it down"


def test_acknowledged_entries_survive_sigkill_during_a_burst(lab_dir):
    logger = Child("runtime.services.logger", lab_dir, service="logger")
    acked: list[int] = []
    stop = threading.Event()

    def burst() -> None:
        with grpc.insecure_channel(logger.address) as ch:
            s = logger_pb2_grpc.LoggerServiceStub(ch)
            for b in range(10_000):
                if stop.is_set():
                    return
                try:
                    send(s, entries(500, f"burst{b}"))
                except grpc.RpcError:
                    return
                acked.append(b)

    sender = threading.Thread(target=burst)
    sender.start()
    try:
        wait_for(lambda: len(acked) >= 20, 20, "20 acknowledged batches")
        logger.kill()
    finally:
        stop.set()
        sender.join(10)
    assert len(acked) >= 20
    again = Child("runtime.services.logger", lab_dir, service="logger")
    try:
        with grpc.insecure_channel(again.address) as ch:
            s = logger_pb2_grpc.LoggerServiceStub(ch)
            for b in (acked[0], acked[len(acked) // 2], acked[-1]):
                found = list(s.QueryLogs(pb.LogQuery(search_text=f"burst{b}", limit=1000), timeout=RPC_S))
                assert len(found) == 500, f"batch {b} was acknowledged but has {len(found)} of 500 entries"
    finally:
        again.stop()
    with sqlite3.connect(lab_dir / LOGS_DB_FILE) as db:
        stored = {m for (m,) in db.execute("SELECT message FROM logs")}
    missing = [f"burst{b} {i}" for b in acked for i in range(500) if f"burst{b} {i}" not in stored]
    assert missing == [], f"{len(missing)} acknowledged entries missing after SIGKILL, e.g. {missing[:3]}"


def test_batched_query_answers_in_carriers(stub):
    send(stub, entries(1200))
    plain = [e.message for e in stub.QueryLogs(pb.LogQuery(limit=1200), timeout=RPC_S)]
    carriers = list(stub.QueryLogs(pb.LogQuery(limit=1200, batched=True), timeout=RPC_S))
    assert len(carriers) == 3 and all(c.batch for c in carriers)
    assert [e.message for c in carriers for e in c.batch] == plain == [f"line {i}" for i in range(1200)]


def test_entries_without_a_timestamp_are_stamped_on_receipt(stub):
    before_ms = int(time.time() * 1000)
    unstamped = entries(3, "unstamped", timestamp=0)
    micro_only = entries(1, "micro", timestamp=0, timestamp_us=before_ms * 1000 + 7)
    ack = send(stub, unstamped + micro_only)
    after_ms = int(time.time() * 1000)
    assert ack.accepted == 4
    # A time-bounded query finds them: nothing was stored at epoch 0.
    found = list(stub.QueryLogs(pb.LogQuery(start_time=before_ms, end_time=after_ms), timeout=RPC_S))
    by_text = {e.message: e for e in found}
    assert set(by_text) == {"unstamped 0", "unstamped 1", "unstamped 2", "micro 0"}, by_text
    for i in range(3):
        e = by_text[f"unstamped {i}"]
        assert before_ms <= e.timestamp <= after_ms and e.timestamp_us // 1000 == e.timestamp
    # A sender's microseconds are kept; the millisecond field is derived from them.
    assert by_text["micro 0"].timestamp_us == before_ms * 1000 + 7
    assert by_text["micro 0"].timestamp == before_ms
