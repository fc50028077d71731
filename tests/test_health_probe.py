"""Pull: grpc.health.v1 probes with flap damping against a real health server the test controls."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2 as gh_pb2
from grpc_health.v1 import health_pb2_grpc as gh_grpc

from runtime.services.health.probe import FlapDamper, Prober
from runtime.services.health.settings import HealthSettings
from runtime.services.health.store import DEGRADED, HEALTHY, UNHEALTHY, UNKNOWN, HealthStore

SERVING = gh_pb2.HealthCheckResponse.SERVING
NOT_SERVING = gh_pb2.HealthCheckResponse.NOT_SERVING
WAIT_S = 5.0
SETTINGS = HealthSettings(
    probe_interval_s=0.05,
    probe_timeout_s=0.3,
    failures_before_unhealthy=3,
    successes_before_healthy=2,
    probe_degraded_latency_ms=100,
    push_grace_s=0.0,
)


class SlowHealth(gh_grpc.HealthServicer):
    """grpc.health.v1 that answers SERVING after ``delay_s``."""

    def __init__(self) -> None:
        self.delay_s = 0.0

    async def Check(self, request, context):
        await asyncio.sleep(self.delay_s)
        return gh_pb2.HealthCheckResponse(status=SERVING)


async def start_server(servicer) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    gh_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    assert port, "could not bind 127.0.0.1:0"
    await server.start()
    return server, f"127.0.0.1:{port}"


async def wait_for(store: HealthStore, instance: str, state: int) -> float:
    start = time.monotonic()
    while (rec := store.get(instance)) is None or rec.state != state:
        assert time.monotonic() - start < WAIT_S, f"{instance} never became {state}; is {rec and rec.state}"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def test_damping_needs_n_failures_and_m_successes():
    d = FlapDamper(failures_before_unhealthy=3, successes_before_healthy=2, degraded_latency_ms=100)
    assert d.observe(UNKNOWN, ok=True, latency_ms=1, detail="SERVING") is None
    assert d.observe(UNKNOWN, ok=True, latency_ms=1, detail="SERVING")[0] == HEALTHY
    # Alternating results (a flapping instance) never change the state.
    for i in range(11):
        assert d.observe(HEALTHY, ok=i % 2 == 0, latency_ms=1, detail="x") is None
    assert d.observe(HEALTHY, ok=False, latency_ms=1, detail="refused") is None
    assert d.observe(HEALTHY, ok=False, latency_ms=1, detail="refused") is None
    state, reason = d.observe(HEALTHY, ok=False, latency_ms=1, detail="refused")
    assert state == UNHEALTHY and "3 health probe(s) failed in a row" in reason and "refused" in reason
    assert d.observe(UNHEALTHY, ok=True, latency_ms=150, detail="SERVING") is None
    state, reason = d.observe(UNHEALTHY, ok=True, latency_ms=150, detail="SERVING")
    assert state == DEGRADED and "150 ms" in reason


def test_probe_follows_a_real_health_server_with_damping():
    async def scenario():
        gh = grpc_health.aio.HealthServicer()
        await gh.set("", SERVING)
        server, address = await start_server(gh)
        store = HealthStore()
        prober = Prober(store, SETTINGS)
        try:
            prober.track("calculator-ts", "calculator-ts-1", address)
            await wait_for(store, "calculator-ts-1", HEALTHY)
            assert store.get("calculator-ts-1").source == "probe"

            await gh.set("", NOT_SERVING)
            took = await wait_for(store, "calculator-ts-1", UNHEALTHY)
            # Three failed probes at 50 ms intervals: not before the second interval has passed.
            assert took >= 2 * SETTINGS.probe_interval_s
            assert "NOT_SERVING" in store.get("calculator-ts-1").message

            await gh.set("", SERVING)
            await wait_for(store, "calculator-ts-1", HEALTHY)

            await server.stop(None)
            await wait_for(store, "calculator-ts-1", UNHEALTHY)
            assert "UNAVAILABLE" in store.get("calculator-ts-1").message
            reasons = [e.reason for e in store.history(instance_id="calculator-ts-1")]
            assert len(reasons) == 4, reasons
        finally:
            await prober.close()
            await server.stop(None)

    asyncio.run(scenario())


def test_slow_probe_is_degraded_a_timeout_is_not_responding_and_pushers_keep_their_state():
    async def scenario():
        slow = SlowHealth()
        server, address = await start_server(slow)
        store = HealthStore()
        prober = Prober(store, SETTINGS)
        try:
            prober.track("calculator-ts", "calculator-ts-1", address)
            await wait_for(store, "calculator-ts-1", HEALTHY)
            slow.delay_s = 0.15
            await wait_for(store, "calculator-ts-1", DEGRADED)
            assert "above the 100 ms threshold" in store.get("calculator-ts-1").message
            slow.delay_s = 0.4  # beyond the probe deadline: no answer is a liveness miss
            await wait_for(store, "calculator-ts-1", UNHEALTHY)
            record = store.get("calculator-ts-1")
            assert record.message == "not responding (3 probes timed out)" and record.source == "liveness"

            slow.delay_s = 0.0
            await wait_for(store, "calculator-ts-1", HEALTHY)
            # An instance that pushes is still probed (liveness), but its answers do not set its state.
            record.pushing = True
            store.apply("calculator-ts", "calculator-ts-1", DEGRADED, "pushed", source="push")
            sent = prober.probes_sent
            await asyncio.sleep(0.3)
            assert prober.probes_sent > sent and store.get("calculator-ts-1").state == DEGRADED
        finally:
            await prober.close()
            await server.stop(None)

    asyncio.run(scenario())


def test_supervisor_ready_counts_as_one_passed_probe():
    async def scenario():
        gh = grpc_health.aio.HealthServicer()
        await gh.set("", SERVING)
        server, address = await start_server(gh)
        store = HealthStore()
        slow_probes = HealthSettings(probe_interval_s=30, probe_timeout_s=0.3, successes_before_healthy=2)
        prober = Prober(store, slow_probes)
        try:
            prober.ready("calculator-ts-1")  # READY may come before the broker's ADDED
            prober.track("calculator-ts", "calculator-ts-1", address, expect_push=False)
            # One real probe (at once: no push grace for a non-Python instance) + READY = HEALTHY,
            # long before a second probe 30 s later.
            took = await wait_for(store, "calculator-ts-1", HEALTHY)
            assert took < 2.0 and prober.probes_sent == 1
        finally:
            await prober.close()
            await server.stop(None)

    asyncio.run(scenario())
