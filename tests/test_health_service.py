"""The health service's gRPC face, served in-process: push, watch, history, bad input, slow subscribers.

Its process behaviour (READY, restarts, rebuilding states) is tested in a real lab in test_health_lab.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from runtime.services.health.servicer import HealthService
from runtime.services.health.settings import HealthSettings
from runtime.v1 import common_pb2, health_pb2, health_pb2_grpc

WAIT_S = 5.0
SLOW_QUEUE = 50


@pytest.fixture
def health(aio_server):
    """The health servicer in this process (no broker, no supervisor) with a small subscriber queue."""
    settings = HealthSettings(subscriber_queue=SLOW_QUEUE)
    return aio_server(
        lambda server: health_pb2_grpc.add_HealthServiceServicer_to_server(
            HealthService(settings).servicer, server
        )
    )


def status(
    instance: str, state: int, message: str = "", service: str = "calculator", **kw
) -> health_pb2.HealthStatus:
    return health_pb2.HealthStatus(
        service_name=service, instance_id=instance, state=state, message=message, **kw
    )


class Pusher:
    """One ReportHealth stream driven by the test: put() a status, close() half-closes."""

    def __init__(self, stub: health_pb2_grpc.HealthServiceStub) -> None:
        self.queue: asyncio.Queue[health_pb2.HealthStatus | None] = asyncio.Queue(maxsize=100)
        self.call = stub.ReportHealth(self._gen())

    async def _gen(self) -> AsyncIterator[health_pb2.HealthStatus]:
        while (item := await self.queue.get()) is not None:
            yield item

    async def put(self, item: health_pb2.HealthStatus) -> None:
        await self.queue.put(item)

    async def close(self) -> health_pb2.HealthAck:
        await self.queue.put(None)
        return await asyncio.wait_for(self.call, WAIT_S)


async def next_event(
    it: AsyncIterator[health_pb2.HealthEvent], pred=lambda e: True
) -> health_pb2.HealthEvent:
    async def find() -> health_pb2.HealthEvent:
        async for ev in it:
            if pred(ev):
                return ev
        raise AssertionError("watch stream ended")

    return await asyncio.wait_for(find(), WAIT_S)


def run(coro):
    return asyncio.run(coro)


def test_watch_sends_snapshot_then_each_transition(health):
    async def scenario():
        async with grpc.aio.insecure_channel(health.address) as ch:
            stub = health_pb2_grpc.HealthServiceStub(ch)
            pusher = Pusher(stub)
            await pusher.put(status("calculator-1", health_pb2.STARTING, "starting"))
            await pusher.put(status("calculator-1", health_pb2.HEALTHY, "serving", address="127.0.0.1:1"))
            await wait_state(stub, "calculator-1", health_pb2.HEALTHY)

            watch = stub.WatchHealth(common_pb2.Empty())
            it = watch.__aiter__()
            snap = await next_event(it, lambda e: e.instance_id == "calculator-1")
            assert snap.snapshot and snap.new_state == health_pb2.HEALTHY and snap.reason == "serving"

            await pusher.put(status("calculator-1", health_pb2.DEGRADED, "p99 latency 300 ms"))
            ev = await next_event(it, lambda e: not e.snapshot)
            assert (ev.old_state, ev.new_state) == (health_pb2.HEALTHY, health_pb2.DEGRADED)
            assert ev.reason == "p99 latency 300 ms" and ev.source == "push" and ev.timestamp > 0

            await pusher.put(status("calculator-1", health_pb2.UNHEALTHY, "stopped: bye", final=True))
            ack = await pusher.close()
            assert ack.ok and ack.reports == 4
            watch.cancel()

            hist = await stub.GetHealthHistory(health_pb2.HealthHistoryRequest(service_name="calculator"))
            seq = [
                (health_pb2.HealthState.Name(e.old_state), health_pb2.HealthState.Name(e.new_state))
                for e in hist.events
            ]
            assert seq == [
                ("UNKNOWN", "STARTING"),
                ("STARTING", "HEALTHY"),
                ("HEALTHY", "DEGRADED"),
                ("DEGRADED", "UNHEALTHY"),
            ]
            # A final report is not a lost stream.
            assert hist.events[-1].reason == "stopped: bye"
            listed = await stub.ListHealth(common_pb2.Empty())
            assert [(s.instance_id, s.final) for s in listed.statuses] == [("calculator-1", True)]

    run(scenario())


async def wait_state(stub, instance: str, state: int) -> health_pb2.HealthStatus:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            st = await stub.CheckHealth(
                health_pb2.ServiceKey(service_name="calculator", instance_id=instance)
            )
            if st.state == state:
                return st
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.NOT_FOUND:
                raise
        assert time.monotonic() < deadline, f"{instance} never reached {health_pb2.HealthState.Name(state)}"
        await asyncio.sleep(0.02)


def test_stream_that_breaks_without_final_report_is_unhealthy_at_once(health):
    async def scenario():
        async with grpc.aio.insecure_channel(health.address) as ch:
            stub = health_pb2_grpc.HealthServiceStub(ch)
            watch = stub.WatchHealth(common_pb2.Empty())
            it = watch.__aiter__()
            async with grpc.aio.insecure_channel(health.address) as reporter_ch:
                pusher = Pusher(health_pb2_grpc.HealthServiceStub(reporter_ch))
                await pusher.put(status("calculator-2", health_pb2.HEALTHY, "serving"))
                await next_event(it, lambda e: e.new_state == health_pb2.HEALTHY)
                broke_at = time.monotonic()
            # Closing the channel under a live stream is what a crashed reporter looks like.
            ev = await next_event(it, lambda e: e.new_state == health_pb2.UNHEALTHY)
            assert ev.reason == "report stream lost" and ev.instance_id == "calculator-2"
            assert time.monotonic() - broke_at < 1.0
            watch.cancel()

    run(scenario())


def test_check_health_bad_input(health):
    async def scenario():
        async with grpc.aio.insecure_channel(health.address) as ch:
            stub = health_pb2_grpc.HealthServiceStub(ch)
            pusher = Pusher(stub)
            await pusher.put(status("calculator-1", health_pb2.HEALTHY, "serving"))
            await wait_state(stub, "calculator-1", health_pb2.HEALTHY)

            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.CheckHealth(health_pb2.ServiceKey(service_name=""))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "calculator" in err.value.details()

            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.CheckHealth(health_pb2.ServiceKey(service_name="calculatr"))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            assert (
                "'calculatr'" in err.value.details() and "known services: calculator" in err.value.details()
            )

            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.CheckHealth(
                    health_pb2.ServiceKey(service_name="calculator", instance_id="calculator-9")
                )
            assert err.value.code() == grpc.StatusCode.NOT_FOUND and "calculator-1" in err.value.details()

            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetHealthHistory(health_pb2.HealthHistoryRequest(limit=-1))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

            whole = await stub.CheckHealth(health_pb2.ServiceKey(service_name="calculator"))
            assert whole.state == health_pb2.HEALTHY and "calculator-1" in whole.message
            await pusher.close()

    run(scenario())


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (status("calculator-1", 9), "STATE_9"),
        (status("calculator-1", health_pb2.UNKNOWN), "UNKNOWN"),
        (status("", health_pb2.HEALTHY), "instance_id is empty"),
        (status("calculator-1", health_pb2.HEALTHY, service=""), "service_name is empty"),
    ],
)
def test_report_health_rejects_invalid_reports(health, report, expected):
    async def scenario():
        async with grpc.aio.insecure_channel(health.address) as ch:
            stub = health_pb2_grpc.HealthServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await asyncio.wait_for(stub.ReportHealth(aiter_of([report])), WAIT_S)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert expected in err.value.details()
            # The service is still fine.
            assert (await stub.ListHealth(common_pb2.Empty())) is not None

    run(scenario())


async def aiter_of(items):
    for item in items:
        yield item


def test_slow_subscriber_never_blocks_others_and_learns_its_drop_count(health):
    transitions = 3000

    async def scenario():
        # The slow subscriber's window stays small (no BDP probing), so the server cannot
        # park thousands of events in the transport: they pile up in its bounded queue.
        slow_ch = grpc.aio.insecure_channel(health.address, options=[("grpc.http2.bdp_probe", 0)])
        async with grpc.aio.insecure_channel(health.address) as ch:
            stub = health_pb2_grpc.HealthServiceStub(ch)
            slow = health_pb2_grpc.HealthServiceStub(slow_ch).WatchHealth(common_pb2.Empty())
            slow_it = slow.__aiter__()
            fast = stub.WatchHealth(common_pb2.Empty())
            fast_it = fast.__aiter__()
            pusher = Pusher(stub)
            # Both subscribers are attached once each has seen this first report.
            await pusher.put(status("calculator-1", health_pb2.STARTING, "pre"))
            await next_event(slow_it, lambda e: e.reason == "pre")
            await next_event(fast_it, lambda e: e.reason == "pre")
            started = time.monotonic()
            states = (health_pb2.HEALTHY, health_pb2.DEGRADED)
            for i in range(transitions):
                await pusher.put(status("calculator-1", states[i % 2], f"t{i} " + "x" * 200))
            last = await next_event(fast_it, lambda e: e.reason.startswith(f"t{transitions - 1} "))
            fast_took = time.monotonic() - started
            assert last.dropped == 0
            await pusher.close()
            # Now the slow one reads: it lost its oldest events and is told how many.
            dropped = 0
            got = 0
            while True:
                ev = await next_event(slow_it)
                got += 1
                dropped += ev.dropped
                if ev.reason.startswith(f"t{transitions - 1} "):
                    break
            fast.cancel()
            slow.cancel()
        await slow_ch.close()
        assert dropped > 0, "the slow subscriber should have lost events"
        assert got + dropped == transitions
        assert fast_took < 10.0

    run(scenario())
