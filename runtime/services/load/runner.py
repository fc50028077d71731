"""One load test running inside the load generator's event loop (open loop; or closed loop).

    run = LoadRun("load-1a2b3c", plan, method, channel)
    task = asyncio.create_task(run.run())       # LoadMetrics arrive on run.metrics (a queue)
    summary = await run.stop()                  # or: summary = await task (ends at its duration)

The dispatcher sends request ``i`` at ``start + i / rps`` (the Schedule), whatever happened to
earlier ones; at most ``concurrency`` are in flight at once (the worker-pool bound). A request
that has to wait for a free slot is sent late: its send lag and its latency both count from
its intended time, and once its deadline (intended time + timeout) has passed it is counted
as ``expired_before_send`` without going on the wire (not in ``requests_sent`` or the rate, which
count what reached the target; its wait is in the latency percentiles). So the backlog is bounded,
nothing is hidden, and the run ends at most one timeout after its duration.

A plan in closed loop (``plan.closed_loop``) sends through ``ClosedLoop`` (closed_loop.py)
instead of the schedule: workers that wait for each answer, which hides a stall. Same calls,
same recorder, same metrics stream.

Requests go round robin to the instances of the target in the discovery rotation (which follows
the broker's watch: a killed instance leaves it); only instances on 127.0.0.1 are ever called.
A failed call is counted under its gRPC status name and the test goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from runtime.client import auth
from runtime.client.discovery import CHANNEL_OPTIONS
from runtime.client.discovery_aio import AioDiscoveryChannel
from runtime.client.rotation import Member
from runtime.identity import LOOPBACK
from runtime.services.load.closed_loop import ClosedLoop
from runtime.services.load.histogram import LoadRecorder
from runtime.services.load.schedule import LoadPlan, Schedule, nap
from runtime.services.load.targets import TargetMethod
from runtime.v1 import load_pb2

log = logging.getLogger("runtime.services.load")

START_DELAY_S = 0.005  # request 0 is due this long after run() begins
METRICS_INTERVAL_S = 1.0
PARTIAL_MIN_S = METRICS_INTERVAL_S / 2  # a last partial interval shorter than this gets no row
METRICS_QUEUE = 64  # a slow reader of the metrics stream loses the oldest ones
# Give the loop a turn after this many sends in one burst (a backlog must not starve replies).
BURST = 64
# stop(): calls in flight get this long to finish, then they are cancelled (counted CANCELLED).
STOP_DRAIN_S = 0.5
NO_INSTANCE = "UNAVAILABLE"
CORRELATION_HEADER = "x-correlation-id"


def is_loopback(address: str) -> bool:
    """True for ``127.0.0.1:PORT``: the only addresses a load test may call."""
    host, _, _ = address.rpartition(":")
    return host == LOOPBACK


def _answered_ok(call: grpc.aio.UnaryUnaryCall) -> bool:
    """True when a finished call answered OK, read without a coroutine.

    grpc.aio keeps the status on its private ``_cython_call`` (what ``call.code()`` itself reads);
    a grpcio without it makes this False, and the caller then asks ``await call.code()``: slower,
    never wrong.
    """
    cython_call = getattr(call, "_cython_call", None)
    return cython_call is not None and bool(cython_call.is_ok())


class LoadRun:
    """A load test (open loop, or closed loop if the plan says so) against one target method."""

    def __init__(
        self,
        test_id: str,
        plan: LoadPlan,
        method: TargetMethod,
        channel: AioDiscoveryChannel,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.test_id = test_id
        self.plan = plan
        self.method = method
        self.channel = channel
        # Per call, like the correlation id (no interceptor). A grpc.aio.Metadata, not a tuple:
        # grpc.aio checks a tuple against typing.Sequence and converts it on every call, ~10 % of
        # the generator's CPU at 1000 rps (py-spy). Built once, it is only read by each call.
        self._auth_pairs = auth.metadata(channel.token)
        self._auth = grpc.aio.Metadata(*self._auth_pairs)
        self.clock = clock
        self.started_at_ms = time.time_ns() // 1_000_000
        self.recorder = LoadRecorder(test_id)
        self.metrics: asyncio.Queue[load_pb2.LoadMetrics] = asyncio.Queue(METRICS_QUEUE)
        self.dropped_metrics = 0
        self.summary: load_pb2.LoadSummary | None = None
        self.done = asyncio.Event()
        self._request = method.request(plan.payload)
        self._in_flight: set[asyncio.Task[None]] = set()  # the closed loop's workers
        self._calls: set[grpc.aio.UnaryUnaryCall] = set()  # the open loop's calls on the wire
        self._calls_done = asyncio.Event()  # set when the last open-loop call answered
        self._slot_free = asyncio.Event()
        self._stopping = False
        self._start_s = 0.0
        self._sent_until = float("inf")
        self._sent_all = False
        self._stubs: dict[str, Any] = {}
        self._channels: list[grpc.aio.Channel] = []

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> load_pb2.LoadSummary:
        """Send the whole schedule (or until stop()), wait for the replies; returns the summary."""
        self._start_s = self.clock() + START_DELAY_S
        self.recorder.begin(self._start_s)
        schedule = Schedule(self.plan.rps, self.plan.duration_s, self._start_s)
        ticker = asyncio.create_task(self._tick(), name=f"{self.test_id} metrics")
        try:
            if self.plan.closed_loop:
                self._sent_all = await ClosedLoop(self).dispatch()
            else:
                await self._dispatch(schedule)
            self._sent_until = self.clock()
            await self._drain(self.plan.timeout_s + 1.0 if not self._stopping else STOP_DRAIN_S)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await self._drain(0.0)
            self._publish_partial()
            elapsed = max(1e-6, self._sending_span_end(schedule) - self._start_s)
            self._publish(self.recorder.final(elapsed))
            self.summary = self.recorder.summary(elapsed)
            self.done.set()
        return self.summary

    def _publish_partial(self) -> None:
        # The sends after the last tick get a row of their own only when they span at least half
        # an interval: a rate over a sliver of a second is noise (3 sends in 2 ms "is" 1500/s),
        # and a chart would draw it as a spike. Their counts are in the final row either way.
        rec = self.recorder
        now = self.clock()
        until = min(now, self._sent_until)
        if rec.interval_sent and until - rec.interval_start_s >= PARTIAL_MIN_S:
            self._publish(rec.interval(now, sending_until_s=self._sent_until))

    def _sending_span_end(self, schedule: Schedule) -> float:
        # The achieved rate counts over the time it took to send: a sender that fell behind and
        # sent its last request late achieved less than asked; one stopped early, over its run.
        sent_until = min(self._sent_until, self.clock())
        if self._sent_all:
            return max(sent_until, schedule.end_s)
        return min(sent_until, schedule.end_s)

    async def stop(self) -> load_pb2.LoadSummary:
        """Stop sending, let calls in flight finish briefly, return the summary."""
        self._stopping = True
        self._slot_free.set()
        await self.done.wait()
        assert self.summary is not None
        return self.summary

    async def _dispatch(self, schedule: Schedule) -> None:
        plan, rec, clock = self.plan, self.recorder, self.clock
        i = 0
        burst = 0
        while i < schedule.total and not self._stopping:
            due = schedule.intended(i)
            now = clock()
            if due > now:
                burst = 0
                await nap(due - now)
                continue
            if now - due >= plan.timeout_s:
                rec.expired(now - due)  # its deadline passed before a slot was free
                i += 1
                continue
            if len(self._calls) >= plan.concurrency:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            self._send(i, due)
            i += 1
            burst += 1
            if burst >= BURST:
                burst = 0
                await asyncio.sleep(0)
        self._sent_all = i >= schedule.total

    def _send(self, i: int, due: float) -> None:
        member = self._pick()
        now = self.clock()
        lag = now - due
        # Counted now, in the interval that dispatched it: counted when its task first ran, a
        # request dispatched before a tick could land after it, in a sliver of an interval.
        self.recorder.sent(lag)
        if member is None:
            # Nobody to send to right now (all gone, none restarted yet): a failure, and on we go.
            self.recorder.done(lag, NO_INSTANCE)
            return
        # The call itself is the request's only task (grpc.aio makes one per call): its answer
        # comes to a done callback, not to a coroutine of ours awaiting it. One task and two
        # loop callbacks fewer per request than ``await stub(...)`` in a task of our own.
        try:
            call = self._stub(member.instance.address)(
                self._request,
                timeout=max(
                    0.001, due + self.plan.timeout_s - now
                ),  # the deadline counts from the intended time
                metadata=self._metadata(i),
            )
        except Exception as exc:  # noqa: BLE001 - e.g. a channel closed under us: count it, go on
            log.debug("call %d failed: %r", i, exc)
            self.recorder.done(self.clock() - due, "UNKNOWN")
            return
        self._calls.add(call)
        call.add_done_callback(functools.partial(self._answered, due))

    def _answered(self, due: float, call: grpc.aio.UnaryUnaryCall) -> None:
        self._calls.discard(call)
        self._slot_free.set()
        if not self._calls:
            self._calls_done.set()
        latency = self.clock() - due
        if call.cancelled():
            self.recorder.done(latency, "CANCELLED")
        elif _answered_ok(call):
            self.recorder.done(latency, "")
        else:  # a failure: its code needs a coroutine (rare; a bounded number at once)
            task = asyncio.get_running_loop().create_task(self._failed(call, latency))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _failed(self, call: grpc.aio.UnaryUnaryCall, latency: float) -> None:
        try:
            code = (await call.code()).name
        except Exception:  # noqa: BLE001
            code = "UNKNOWN"
        self.recorder.done(latency, "" if code == "OK" else code)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_free.set()

    def _metadata(self, i: int) -> grpc.aio.Metadata:
        if not self.plan.correlation_prefix:
            return self._auth
        return grpc.aio.Metadata(
            *self._auth_pairs, (CORRELATION_HEADER, f"{self.plan.correlation_prefix}{i}")
        )

    def _pick(self) -> Member[Any] | None:
        rotation = self.channel.rotation
        member = rotation.pick()  # the common case: the next one will do (no list of instances)
        tries = 1
        while member is not None:
            inst = member.instance
            if is_loopback(inst.address) and (not self.plan.role or inst.role == self.plan.role):
                return member
            if tries >= len(rotation.instances()):
                return None  # a whole round and nobody fits
            member = rotation.pick()
            tries += 1
        return None

    async def _call(self, member: Member[Any], i: int, due: float) -> None:
        clock = self.clock
        stub = self._stub(member.instance.address)
        metadata = self._metadata(i)
        code = ""
        try:
            # The deadline counts from the intended send time too.
            timeout = max(0.001, due + self.plan.timeout_s - clock())
            await stub(self._request, timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        except asyncio.CancelledError:
            code = "CANCELLED"
        except Exception as exc:  # noqa: BLE001 - e.g. a channel closed under us: count it, go on
            log.debug("call %d failed: %r", i, exc)
            code = "UNKNOWN"
        self.recorder.done(clock() - due, code)

    def _stub(self, address: str) -> Any:
        # Our own plain channel per instance address: the discovery channel's carry the
        # correlation interceptors, which cost ~15 % more CPU per call; the rotation still
        # decides who is called.
        stub = self._stubs.get(address)
        if stub is None:
            channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            self._channels.append(channel)
            stub = channel.unary_unary(
                self.method.path,
                request_serializer=type(self._request).SerializeToString,
                response_deserializer=self.method.response.FromString,
            )
            self._stubs[address] = stub
        return stub

    async def close(self) -> None:
        """Close the channels this test opened (after run() returned)."""
        for channel in self._channels:
            await channel.close()
        self._channels.clear()
        self._stubs.clear()

    async def _drain(self, timeout_s: float) -> None:
        # Open-loop calls: wait for their answers up to ``timeout_s``, then cancel the rest (their
        # done callbacks count them CANCELLED). Then the closed loop's workers, likewise.
        if self._calls and timeout_s > 0:
            self._calls_done.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._calls_done.wait(), timeout_s)
        for call in list(self._calls):
            call.cancel()
        for _ in range(100):  # a cancelled call's callback comes within a loop turn or two
            if not self._calls:
                break
            await asyncio.sleep(0.001)
        if not self._in_flight:
            return
        pending = set(self._in_flight)
        if timeout_s > 0:
            _, pending = await asyncio.wait(pending, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- metrics -----------------------------------------------------------------------------

    async def _tick(self) -> None:
        k = 1
        while True:
            await asyncio.sleep(max(0.0, self._start_s + k * METRICS_INTERVAL_S - self.clock()))
            self._publish(self.recorder.interval(self.clock()))
            k += 1

    def _publish(self, metrics: load_pb2.LoadMetrics) -> None:
        if self.metrics.full():
            self.metrics.get_nowait()
            self.dropped_metrics += 1
        self.metrics.put_nowait(metrics)

    def active_test(self) -> load_pb2.ActiveLoadTest:
        """This test as GetActiveTests lists it."""
        test = load_pb2.ActiveLoadTest(test_id=self.test_id, started_at=self.started_at_ms)
        if self.recorder.latest is not None:
            test.latest.CopyFrom(self.recorder.latest)
        return test
