"""Load tests from the notebook: start one, watch its per-second metrics as a frame, stop it.

The functions take a (sync) gRPC channel to the load generator, so they work with or without a
``Lab``; :class:`Load` is the part ``Lab`` holds as ``lab.load``. ``lab.start_load(...)`` stays
as a thin alias of ``lab.load.start(...)``: it is the one call of the load chapter.

    test = lab.load.start("CalculatorService", rps=200, duration_s=5)
    test.frame                 # one row per second: sent, rps, p50_ms ... p99_ms, errors
    test.wait()                # until the test ends by itself (at its duration)
    test.summary()             # LoadSummary as a Series: achieved_rps, latency_p99_ms, ...
    test.stop()                # or stop it early
    lab.load.tests()           # the tests running now
    lab.load.start("calculator", rps=100, duration_s=3, mode="closed", concurrency=1)
                               # closed loop: to see the p99 it hides (see LOAD_MODES)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import grpc
import pandas as pd
from google.protobuf import json_format

from runtime.errors import LabError, UsageError
from runtime.identity import LOADGEN_GRPC_SERVICE
from runtime.lab.connection import Connection, call, message, rpc_error
from runtime.v1 import common_pb2, load_pb2, load_pb2_grpc

log = logging.getLogger("runtime.lab.load")

SERVICE = "load generator"  # how error messages name it
TEST_ID_HEADER = "x-test-id"
RPC_TIMEOUT_S = 5.0
# A test ends at most one request timeout (<= 30 s) after its duration; wait() allows that.
END_SLACK_S = 35.0
THREAD_PREFIX = "lab-load-"

METRIC_COLUMNS = [
    "time", "second", "sent", "succeeded", "failed", "rps", "p50_ms", "p95_ms", "p99_ms",
    "p999_ms", "send_lag_p99_ms", "errors", "final",
]  # fmt: skip
ACTIVE_COLUMNS = [
    "test_id", "target", "method", "mode", "rps", "duration_s", "concurrency", "started_at", "sent",
    "failed", "current_rps", "p99_ms",
]  # fmt: skip
# ``mode=`` of lab.load.start: open loop (requests on a fixed schedule, latency from the intended
# send time: what users see) or closed loop (each client waits for its answer before it sends
# again, latency from the actual send: a stall stops the sending and hides from the p99).
LOAD_MODES = {"open": load_pb2.LOAD_MODE_OPEN_LOOP, "closed": load_pb2.LOAD_MODE_CLOSED_LOOP}
MODE_NAMES = {
    load_pb2.LOAD_MODE_UNSPECIFIED: "open",
    load_pb2.LOAD_MODE_OPEN_LOOP: "open",
    load_pb2.LOAD_MODE_CLOSED_LOOP: "closed",
}


def metrics_row(m: load_pb2.LoadMetrics, second: int) -> dict[str, Any]:
    """One LoadMetrics as a row of ``LoadTest.frame``."""
    return {
        "time": pd.Timestamp(m.timestamp, unit="ms", tz="UTC"),
        "second": second,
        "sent": m.requests_sent,
        "succeeded": m.requests_succeeded,
        "failed": m.requests_failed,
        "rps": round(m.current_rps, 1),
        "p50_ms": m.latency_p50_ms,
        "p95_ms": m.latency_p95_ms,
        "p99_ms": m.latency_p99_ms,
        "p999_ms": m.latency_p999_ms,
        "send_lag_p99_ms": m.send_lag_p99_ms,
        "errors": dict(m.error_counts),
        "final": m.final,
    }


def summary_series(summary: load_pb2.LoadSummary) -> pd.Series:
    """A LoadSummary as a Series (every field, zeros included; error_counts as a dict)."""
    data = json_format.MessageToDict(
        summary, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    for key in ("total_requests", "total_succeeded", "total_failed", "expired_before_send"):
        data[key] = int(data[key])
    data["error_counts"] = {k: int(v) for k, v in data.get("error_counts", {}).items()}
    return pd.Series(data, name=summary.test_id)


def load_mode(mode: object) -> int:
    """``"open"`` or ``"closed"`` as a LoadMode; anything else is a UsageError naming both.

    Example:
        >>> load_mode("closed") == load_pb2.LOAD_MODE_CLOSED_LOOP
        True
        >>> load_mode("wrk")
        Traceback (most recent call last):
        runtime.errors.UsageError: mode='wrk' is not a load mode; use "open" (the default: a fixed schedule, what users see) or "closed" (each client waits for its answer)
    """
    if isinstance(mode, str) and mode in LOAD_MODES:
        return LOAD_MODES[mode]
    raise UsageError(
        f'mode={mode!r} is not a load mode; use "open" (the default: a fixed schedule, what '
        f'users see) or "closed" (each client waits for its answer)'
    )


def load_config(
    target: str,
    rps: int,
    duration_s: int,
    method: str = "",
    concurrency: int = 0,
    payload: dict[str, float] | None = None,
    timeout_ms: int = 0,
    correlation_prefix: str = "",
    mode: str = "open",
) -> load_pb2.LoadConfig:
    """The LoadConfig for these arguments (the service checks the limits).

    Raises:
        UsageError: a value of the wrong type (``rps="100"``), or a mode other than "open" or
            "closed", before anything is sent.
    """
    load_mode_value = load_mode(mode)
    return message(
        load_pb2.LoadConfig,
        f"load on {target!r}",
        target_service=target,
        requests_per_second=rps,
        duration_seconds=duration_s,
        concurrent_clients=concurrency,
        method=method,
        payload=json.dumps(payload).encode() if payload else b"",
        timeout_ms=timeout_ms,
        correlation_prefix=correlation_prefix,
        mode=load_mode_value,
    )


class LoadTest:
    """One running load test: its metrics arrive once per second on a named background thread.

    Example:
        >>> test = LoadTest(channel, load_config("CalculatorService", rps=100, duration_s=3))  # doctest: +SKIP
        >>> test.wait(); test.frame[["rps", "p99_ms"]]                                       # doctest: +SKIP

    Raises:
        ClientError: the load generator refused the config (``code`` INVALID_ARGUMENT names the
            limit, RESOURCE_EXHAUSTED: too many tests running).
        ServiceNotFound: no instance of the target on 127.0.0.1.
    """

    def __init__(self, channel: Any, config: load_pb2.LoadConfig) -> None:
        self.config = config
        self._stub = load_pb2_grpc.LoadGeneratorServiceStub(channel)
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._callbacks: list[Callable[[dict[str, Any]], object]] = []
        self.final: load_pb2.LoadMetrics | None = None
        self.error: LabError | None = None
        self._done = threading.Event()
        self._call = self._stub.StartLoad(config)
        headers = dict(self._call.initial_metadata() or ())
        self.test_id: str = headers.get(TEST_ID_HEADER, "")
        if not self.test_id:
            try:
                next(self._call)  # the stream ended before the test started: raises its status
            except grpc.RpcError as err:
                raise rpc_error(err, SERVICE, f"starting load on {config.target_service}") from None
            raise LabError(f"the load generator started no test on {config.target_service}")
        self._thread = threading.Thread(target=self._follow, name=THREAD_PREFIX + self.test_id, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            for m in self._call:
                with self._lock:
                    row = metrics_row(m, len(self._rows) + 1)
                    if not m.final:
                        self._rows.append(row)
                    else:
                        self.final = m
                    callbacks = list(self._callbacks)
                for cb in callbacks:
                    try:
                        cb(row)
                    except Exception:  # a notebook callback's bug must not end the stream
                        log.exception("load metrics callback failed")
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                self.error = rpc_error(err, SERVICE, f"load test {self.test_id}")
        finally:
            self._done.set()

    @property
    def frame(self) -> pd.DataFrame:
        """Per-second metrics so far (percentiles of the calls that ended in that second)."""
        with self._lock:
            rows = list(self._rows)
        return pd.DataFrame(rows, columns=METRIC_COLUMNS)

    @property
    def done(self) -> bool:
        """True once the test ended (the final metrics arrived, or the stream broke)."""
        return self._done.is_set()

    def on_metrics(self, callback: Callable[[dict[str, Any]], object]) -> None:
        """Call ``callback(row)`` from the background thread for every metrics row (and the final one)."""
        with self._lock:
            self._callbacks.append(callback)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until the test ends (default: its duration plus slack); True if it did."""
        if timeout_s is None:
            timeout_s = self.config.duration_seconds + END_SLACK_S
        return self._done.wait(timeout_s)

    def stop(self) -> pd.Series:
        """Stop the test now; returns its summary."""
        summary = self._stop_load()
        self._done.wait(RPC_TIMEOUT_S)
        return summary_series(summary)

    def summary(self, timeout_s: float | None = None) -> pd.Series:
        """The LoadSummary once the test has ended (waits for it): achieved_rps, latency_p99_ms, ..."""
        if not self.wait(timeout_s):
            raise TimeoutError(f"load test {self.test_id} has not ended yet; stop() ends it now")
        return summary_series(self._stop_load())

    def _stop_load(self) -> load_pb2.LoadSummary:
        try:
            return self._stub.StopLoad(
                common_pb2.Empty(), metadata=((TEST_ID_HEADER, self.test_id),), timeout=RPC_TIMEOUT_S
            )
        except grpc.RpcError as err:
            raise rpc_error(err, SERVICE, f"stopping load test {self.test_id}") from None

    def close(self) -> None:
        """Stop following (cancels the stream; the load generator ends the test with it)."""
        self._call.cancel()
        self._thread.join(RPC_TIMEOUT_S)

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        c = self.config
        mode = MODE_NAMES.get(c.mode, str(c.mode))
        return (
            f"<LoadTest {self.test_id} {c.requests_per_second} rps x {c.duration_seconds} s on "
            f"{c.target_service}, {mode} loop: {state}>"
        )


def active_tests_frame(channel: Any) -> pd.DataFrame:
    """The tests running now, one row each."""
    stub = load_pb2_grpc.LoadGeneratorServiceStub(channel)
    reply = call(stub.GetActiveTests, common_pb2.Empty(), SERVICE, "listing load tests")
    rows = [
        {
            "test_id": t.test_id,
            "target": t.config.target_service,
            "method": t.config.method or "(default)",
            "mode": MODE_NAMES.get(t.config.mode, str(t.config.mode)),
            "rps": t.config.requests_per_second,
            "duration_s": t.config.duration_seconds,
            "concurrency": t.config.concurrent_clients,
            "started_at": pd.Timestamp(t.started_at, unit="ms", tz="UTC"),
            "sent": t.latest.requests_sent,
            "failed": t.latest.requests_failed,
            "current_rps": round(t.latest.current_rps, 1),
            "p99_ms": t.latest.latency_p99_ms,
        }
        for t in reply.tests
    ]
    return pd.DataFrame(rows, columns=ACTIVE_COLUMNS)


class Load:
    """The load part of ``Lab`` (``lab.load``): start load tests (open loop, or closed), list the running ones.

    Example:
        >>> test = lab.load.start("calculator", rps=200, duration_s=5)   # doctest: +SKIP
        >>> lab.load.tests()                                             # doctest: +SKIP
    """

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def _channel(self) -> Any:
        return self._conn.channel(LOADGEN_GRPC_SERVICE)

    def start(
        self,
        target: str,
        rps: int = 100,
        duration_s: int = 10,
        method: str = "",
        concurrency: int = 0,
        payload: dict[str, float] | None = None,
        timeout_ms: int = 0,
        correlation_prefix: str = "",
        mode: str = "open",
    ) -> LoadTest:
        """Start a load test (open loop unless told); returns at once with a handle whose ``frame`` fills live.

        Args:
            target: the service to load (lab name, gRPC name or short name).
            rps: requests per second, sent on schedule whatever the replies do (closed loop:
                the most sent per second, in total).
            duration_s: the test ends by itself after this long.
            method: a unary method of the target ("": the first it declares); the load
                generator learns them through server reflection.
            concurrency: most requests in flight at once (0: the service's default; closed
                loop: the number of clients, 0: one).
            payload: the request fields, e.g. ``{"a": 2, "b": 3}``.
            timeout_ms: per-request deadline from its intended send time (0: 1000).
            correlation_prefix: send ``x-correlation-id`` ``<prefix><n>`` with request n.
            mode: ``"open"`` (default): request n is due at start + n / rps whatever the
                answers do, and its latency counts from then, so a stall shows in the p99.
                ``"closed"``: ``concurrency`` clients, each sends only after its previous
                answer, latency from the actual send: a stall stops the sending, and the
                requests never sent are never measured (coordinated omission, a falsely low
                p99). For comparison; measure with the open loop.

        Raises:
            UsageError: a value of the wrong type, or a mode other than "open" or "closed",
                before anything is sent.
            ClientError: the load generator refused (``code`` INVALID_ARGUMENT names the limit).
            ServiceNotFound: no instance of the target on 127.0.0.1.

        Example:
            >>> test = lab.load.start("calculator", rps=200, duration_s=5)   # doctest: +SKIP
            >>> test.wait(); test.summary().achieved_rps       # doctest: +SKIP
            200.0
        """
        config = load_config(
            target, rps, duration_s, method, concurrency, payload, timeout_ms, correlation_prefix, mode
        )
        return LoadTest(self._channel(), config)

    def tests(self) -> pd.DataFrame:
        """The load tests running now: test_id, target, method, rps, ..., current_rps, p99_ms."""
        return active_tests_frame(self._channel())

    def __repr__(self) -> str:
        return "<lab.load: .start(), .tests()>"
