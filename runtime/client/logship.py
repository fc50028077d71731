"""Ships log entries to the logger service from any process: supervisor, agent, notebook kernel.

``LogShipper.emit(entry)`` never blocks: entries go into a bounded buffer that a named background
thread drains in batches over StreamLogs (carrier entries, see logger.proto). The thread finds the
logger through the broker (LookupService "runtime.v1.LoggerService"), keeps what it sent until the
logger acknowledged it (acks come after the SQLite commit), and when the logger is down it keeps
buffering and replays once it is back.

A steady stream goes out as one StreamLogs call per ``SESSION_S`` carrying a batch every
``SEND_INTERVAL_S`` (the logger numbers and publishes each carrier on arrival, so live tails see
it at once, and commits when the call ends): a call costs the logger ~1 ms of CPU, which one
call per 20 ms batch made most of its cost per line (see SESSION_S). A call ends as soon as the buffer is
empty at a send (a trickle is shipped and acknowledged at once), when ``flush``/``close`` wait,
or after ``SESSION_S`` or ``SESSION_ENTRIES``.

When the buffer overflows, the oldest entries are dropped, counted, and reported to the logger as
one WARN entry as soon as it is reachable again.

    shipper = LogShipper(broker_address="127.0.0.1:50051", name="supervisor")
    shipper.emit(entry_from_output("calculator", "calculator-1", 4242, "stdout", ts_ms, "hello"))
    shipper.close(timeout_s=2.0)     # flushes what it can

The supervisor's output hook is ``shipper.on_output`` (same arguments as entry_from_output).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

from runtime.client import auth
from runtime.client.jsonlog import parse_line
from runtime.identity import ENV_BROKER_ADDR, LOGGER_GRPC_SERVICE, broker_address_from_env
from runtime.v1 import broker_pb2, broker_pb2_grpc, logger_pb2, logger_pb2_grpc

BUFFER_MAX = 100_000  # entries kept while the logger is unreachable; beyond: oldest dropped
BATCH_MAX = 1000  # entries per send (a StreamLogs call carries one or more sends)
CARRIER_SIZE = 250  # entries per gRPC message (one carrier LogEntry)
LINGER_S = 0.005  # wait this long for more entries before sending a small batch
# Under steady load, send at most this often unless a full batch waits. Adds at most this much
# to a line's way to a subscriber (target p99 <= 50 ms).
SEND_INTERVAL_S = 0.02
# A steady stream's batches share one StreamLogs call for at most this long; then it ends and the
# logger acknowledges (after its commit). Two calculators at 500 lines/s each: the logger spent
# 140-164 us of CPU per line with one call per batch (every 20 ms), 68-80 us with calls of
# up to SESSION_S / SESSION_ENTRIES; the senders 150-165 -> 127-141 us (load avg 13).
SESSION_S = 1.0
# ... or for at most this many entries, so acknowledgements (and ``stats.shipped``) keep coming.
SESSION_ENTRIES = 500
RETRY_MIN_S = 0.05
RETRY_MAX_S = 1.0
RPC_TIMEOUT_S = 5.0
UNREACHABLE_FLUSH_S = 0.2  # flush/close wait no longer than this while the logger is unreachable
JOIN_S = 0.5  # close() waits this long for the thread (a hung call is left to its RPC timeout)
LEVEL_STDOUT = logger_pb2.INFO
LEVEL_STDERR = logger_pb2.WARN


def entry_from_output(
    service: str, instance_id: str, pid: int, stream: str, ts_ms: int, line: str
) -> logger_pb2.LogEntry:
    """The LogEntry for one captured output line of a lab process.

    JSON lines of the jsonlog contract keep their level, message, correlation id, time and
    extra fields (as metadata); plain stdout lines are INFO, plain stderr lines WARN.
    """
    text = line.rstrip("\r\n")
    meta = {"pid": str(pid), "stream": stream}
    parsed = parse_line(text)
    if parsed is None:
        return logger_pb2.LogEntry(
            service_name=service, instance_id=instance_id, message=text, timestamp=ts_ms,
            level=LEVEL_STDERR if stream == "stderr" else LEVEL_STDOUT, source=stream, metadata=meta,
        )  # fmt: skip
    meta.update(parsed["fields"])
    if parsed["service"] and parsed["service"] != service:
        meta["logged_service"] = parsed["service"]
    if parsed["instance"] and parsed["instance"] != instance_id:
        meta["logged_instance"] = parsed["instance"]
    level = parsed["level"]
    if level is None:
        level = LEVEL_STDERR if stream == "stderr" else LEVEL_STDOUT
    ts_us = parsed["ts_us"] or 0
    return logger_pb2.LogEntry(
        service_name=service, instance_id=instance_id, message=parsed["message"], level=level,
        timestamp=parsed["ts"] or (ts_us // 1000 if ts_us else ts_ms), timestamp_us=ts_us,
        correlation_id=parsed["correlation_id"], source=stream, metadata=meta,
    )  # fmt: skip


@dataclass
class ShipperStats:
    """What a shipper did so far."""

    emitted: int = 0
    shipped: int = 0
    dropped: int = 0
    buffered: int = 0
    reconnects: int = 0
    last_error: str = ""


@dataclass
class _Call:
    """One StreamLogs call of the shipping thread: what it sent, until its ack is read."""

    future: grpc.Future | None = None
    sent: list[logger_pb2.LogEntry] = field(default_factory=list)  # entries, drop reports aside
    drops: int = 0  # entries the drop reports it carried count
    reports: int = 0  # drop reports it carried
    settled: bool = False  # its ack was read (or it was refused for good)


class LogShipper:
    """A bounded, non-blocking queue of LogEntry drained to the logger by a named thread.

    Args:
        broker_address: where to look the logger up (default: $LAB_BROKER_ADDR).
        logger_address: ship straight to this logger instead (tests, or when it is known).
        name: shown in the thread name and in drop reports (e.g. "supervisor", "calculator-1").
        buffer_max: entries kept while the logger is unreachable.
        token: the lab's token (default: ``$LAB_TOKEN``, else ``$LAB_DIR/token``).
    """

    def __init__(
        self,
        broker_address: str | None = None,
        *,
        logger_address: str = "",
        name: str = "shipper",
        buffer_max: int = BUFFER_MAX,
        token: str | None = None,
    ) -> None:
        self._token = auth.resolve_token(token)
        self.broker_address = broker_address_from_env() if broker_address is None else broker_address
        if not self.broker_address and not logger_address:
            raise ValueError(f"LogShipper needs a broker address (or {ENV_BROKER_ADDR}) or a logger address")
        self.fixed_address = logger_address
        self.name = name
        self.stats = ShipperStats()
        self._buf: deque[logger_pb2.LogEntry] = deque(maxlen=buffer_max)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._flush_wanted = threading.Event()  # a flush() waits: end the current call now
        self._in_flight = 0
        self._last_send = 0.0
        self._unreported_drops = 0
        self.reachable = True  # False from a failed send until the next acknowledged one
        self._channel: auth.ClosingChannel | None = None
        self._stub: logger_pb2_grpc.LoggerServiceStub | None = None
        self._thread = threading.Thread(target=self._run, name=f"log-shipper-{name}", daemon=True)
        self._thread.start()

    # -- producer side (any thread; never blocks on the network) ---------------------------

    def emit(self, entry: logger_pb2.LogEntry) -> None:
        """Queue one entry; when the buffer is full the oldest buffered entry is dropped."""
        with self._lock:
            if len(self._buf) == self._buf.maxlen:
                self.stats.dropped += 1
                self._unreported_drops += 1
            self._buf.append(entry)
            self.stats.emitted += 1
        self._wake.set()

    def on_output(self, service: str, instance_id: str, pid: int, stream: str, ts_ms: int, line: str) -> None:
        """The supervisor's output hook: convert the line and queue it."""
        self.emit(entry_from_output(service, instance_id, pid, stream, ts_ms, line))

    @property
    def thread(self) -> threading.Thread:
        """The background thread (its name starts with ``log-shipper-``)."""
        return self._thread

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything emitted so far was acknowledged; False on timeout.

        The whole ``timeout_s`` even while the logger is unreachable: a logger that restarts comes
        back within it (``close`` is the one that gives up early on a logger that is gone).
        """
        if not self._thread.is_alive():
            return not self._buf
        deadline = time.monotonic() + timeout_s
        try:
            with self._lock:
                while self._buf or self._in_flight:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._flush_wanted.set()
                    self._wake.set()
                    self._idle.wait(min(left, 0.05))
            return True
        finally:
            self._flush_wanted.clear()

    def close(self, timeout_s: float = 2.0) -> bool:
        """Flush for up to ``timeout_s``, then stop the thread; True when nothing was left behind.

        Safe to call twice (``logging.shutdown`` closes handlers again at exit).
        """
        if self._closing.is_set():
            return not self._buf
        # A stopping process must not hang on a logger that is gone: while it is unreachable,
        # wait at most UNREACHABLE_FLUSH_S (what is left is counted as dropped).
        flushed = self.flush(timeout_s if self.reachable else min(timeout_s, UNREACHABLE_FLUSH_S))
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=JOIN_S)
        if self._channel is not None and not self._thread.is_alive():
            self._channel.close()
            self._channel = None
        if not flushed:
            with self._lock:
                self.stats.dropped += len(self._buf)
        return flushed

    # -- the shipping thread ---------------------------------------------------------------

    def _take(self) -> tuple[list[logger_pb2.LogEntry], int]:
        with self._lock:
            n = min(BATCH_MAX, len(self._buf))
            batch = [self._buf.popleft() for _ in range(n)]
            self._in_flight += n
            drops, self._unreported_drops = self._unreported_drops, 0
            self.stats.buffered = len(self._buf)
        if drops:
            batch.append(self._drop_report(drops))
        return batch, drops

    def _give_back(self, batch: list[logger_pb2.LogEntry], drops: int) -> None:
        # Failed batch goes back in front, in order; if that overflows, the oldest are dropped.
        # The drop report is not put back: its count is, and a new report is made next time.
        with self._lock:
            self._unreported_drops += drops
            room = self._buf.maxlen - len(self._buf)  # type: ignore[operator]
            lost = max(0, len(batch) - room)
            if lost:
                self.stats.dropped += lost
                self._unreported_drops += lost
            self._buf.extendleft(reversed(batch[lost:]))
            self._in_flight = 0

    def _run(self) -> None:
        delay = RETRY_MIN_S
        pending: _Call | None = None  # the last call, ended, its ack not read yet
        while True:
            if not self._buf:
                if pending is not None:
                    try:
                        self._settle(pending)
                    except grpc.RpcError as exc:
                        delay = self._failed([pending], exc, delay)
                        if self._closing.is_set():
                            return
                        continue
                    finally:
                        pending = None
                if self._closing.is_set():
                    return
                self._wake.wait(0.5)
                self._wake.clear()
                if self._closing.is_set() and not self._buf:
                    return
                if len(self._buf) < BATCH_MAX:
                    time.sleep(LINGER_S)  # let a burst gather into one batch
            self._pace()
            if not self._buf:
                continue
            current = _Call()
            try:
                self._session(current, pending)
            except (grpc.RpcError, LookupError) as exc:
                delay = self._failed(
                    [c for c in (pending, current) if c is not None and not c.settled], exc, delay
                )
                pending = None
                if self._closing.is_set():
                    return
                continue
            delay = RETRY_MIN_S
            pending = current  # acknowledged while the next call sends (or once the buffer is empty)

    def _failed(self, calls: list[_Call], exc: BaseException, delay: float) -> float:
        # Everything these calls sent goes back in front, in order; wait, and return the next delay.
        for call in calls:
            if call.future is not None:
                call.future.cancel()
        self._give_back([e for call in calls for e in call.sent], sum(call.drops for call in calls))
        self._forget_logger(exc)
        if not self._closing.is_set():
            self._closing.wait(delay)
        return min(RETRY_MAX_S, delay * 2)

    def _settle(self, call: _Call) -> None:
        """Read a call's ack (blocks until it comes); raises grpc.RpcError when the call failed."""
        call.settled = True
        assert call.future is not None
        try:
            call.future.result()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:  # type: ignore[attr-defined]
                call.settled = False
                raise
            # The logger refuses an entry of this call for good: retrying would loop forever.
            with self._lock:
                self.stats.dropped += len(call.sent)
                self.stats.last_error = exc.details() or "INVALID_ARGUMENT"  # type: ignore[attr-defined]
                self._in_flight = max(0, self._in_flight - len(call.sent))
                self._idle.notify_all()
            return
        self.reachable = True
        with self._lock:
            self.stats.shipped += len(call.sent) + call.reports
            self._in_flight = max(0, self._in_flight - len(call.sent))
            self._idle.notify_all()

    def _pace(self) -> None:
        # At most one batch per SEND_INTERVAL_S (gathers a steady stream into fewer, larger
        # batches), unless a full batch waits or the shipper is closing.
        wait = self._last_send + SEND_INTERVAL_S - time.monotonic()
        if wait > 0 and len(self._buf) < BATCH_MAX and not self._closing.is_set():
            self._closing.wait(wait)

    def _session(self, call: _Call, pending: _Call | None) -> None:
        """One StreamLogs call: a batch now, then one per SEND_INTERVAL_S while more keep coming.

        Fills ``call`` with what went out; reads ``pending``'s ack meanwhile (at the latest when
        this call's requests end). Does not wait for this call's own ack (``_settle`` does).
        Raises grpc.RpcError or LookupError when the logger cannot be reached or a call failed.
        """
        stub = self._logger()
        carriers: queue.SimpleQueue[logger_pb2.LogEntry | None] = queue.SimpleQueue()

        def requests() -> Iterator[logger_pb2.LogEntry]:
            while (carrier := carriers.get()) is not None:
                yield carrier

        call.future = stub.StreamLogs.future(requests(), timeout=RPC_TIMEOUT_S)
        ends = time.monotonic() + SESSION_S
        try:
            while True:
                self._last_send = time.monotonic()
                batch, dropped = self._take()
                call.sent.extend(batch[: len(batch) - (1 if dropped else 0)])
                call.drops += dropped
                call.reports += 1 if dropped else 0
                for i in range(0, len(batch), CARRIER_SIZE):
                    carriers.put(logger_pb2.LogEntry(batch=batch[i : i + CARRIER_SIZE]))
                if pending is not None and not pending.settled and pending.future is not None:
                    if pending.future.done():
                        self._settle(pending)
                if self._closing.is_set() or self._flush_wanted.is_set() or call.future.done():
                    break
                if time.monotonic() >= ends or len(call.sent) >= SESSION_ENTRIES:
                    break
                self._pace()
                if not self._buf or self._flush_wanted.is_set():
                    break  # nothing more right now: end the call (its ack is read later)
        finally:
            carriers.put(None)
        if pending is not None and not pending.settled:
            self._settle(pending)

    def _logger(self) -> logger_pb2_grpc.LoggerServiceStub:
        if self._stub is not None:
            return self._stub
        address = self.fixed_address or self._lookup()
        self._channel = auth.insecure_channel(address, token=self._token)
        self._stub = logger_pb2_grpc.LoggerServiceStub(self._channel)
        return self._stub

    def _lookup(self) -> str:
        with auth.insecure_channel(self.broker_address, token=self._token) as ch:
            found = broker_pb2_grpc.BrokerServiceStub(ch).LookupService(
                broker_pb2.LookupServiceRequest(service_name=LOGGER_GRPC_SERVICE), timeout=RPC_TIMEOUT_S
            )
        if not found.instances:
            raise LookupError(f"no {LOGGER_GRPC_SERVICE} registered at the broker yet")
        return found.instances[0].address

    def _forget_logger(self, exc: BaseException) -> None:
        self.reachable = False
        self.stats.reconnects += 1
        self.stats.last_error = str(getattr(exc, "details", lambda: str(exc))() or exc)
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._stub = None

    def _drop_report(self, n: int) -> logger_pb2.LogEntry:
        now_ms = int(time.time() * 1000)
        return logger_pb2.LogEntry(
            service_name=self.name, instance_id=self.name, level=logger_pb2.WARN, timestamp=now_ms,
            source="shipper", metadata={"dropped": str(n)},
            message=f"log shipper {self.name} dropped {n} entries: its buffer of "
            f"{self._buf.maxlen} was full while the logger was unreachable",
        )  # fmt: skip
