"""The agent's HealthReporter: DEGRADED rule with hysteresis, final report, reconnect after restart."""

from __future__ import annotations

import asyncio
import random
import signal
import time

import grpc
import pytest
from service_process import start_service

from runtime.agent.health_reporter import MIN_SAMPLES, DegradedRule, HealthReporter, p99_of
from runtime.client.percentiles import percentile
from runtime.identity import Identity
from runtime.v1 import health_pb2, health_pb2_grpc

WAIT_S = 5.0
REBUILD_LIMIT_S = 2.0
IDENTITY = Identity(service_name="calculator", instance_id="calculator-7")


def test_rule_degrades_on_p99_and_in_flight_and_recovers_with_hysteresis():
    rule = DegradedRule(p99_ms=100, in_flight=10, recover_ratio=0.7, recover_hold_s=1.0, window_s=5.0)
    for _ in range(30):
        rule.finished(rule.started(), now=0.0, latency_ms=150)
    assert rule.evaluate(now=0.0) == (True, "p99 latency 150 ms is above 100 ms (last 5 s)")
    # Below the threshold but above 70 % of it: still DEGRADED (hysteresis).
    for _ in range(30):
        rule.finished(rule.started(), now=6.0, latency_ms=80)
    assert rule.evaluate(now=6.0)[0] and rule.evaluate(now=8.0)[0]
    for _ in range(30):
        rule.finished(rule.started(), now=12.0, latency_ms=10)
    assert rule.evaluate(now=12.0)[0]  # calm, but not for long enough yet
    degraded, reason = rule.evaluate(now=13.1)
    assert not degraded and reason.startswith("recovered")

    for _ in range(11):
        rule.started()
    degraded, reason = rule.evaluate(now=13.2)
    assert degraded and reason == "11 calls in flight, more than 10"


async def slow_call(request: bytes, context) -> bytes:
    await asyncio.sleep(float(request.decode()))
    return b"ok"


async def start_app_server(reporter: HealthReporter) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server(interceptors=reporter.interceptors(), options=[("grpc.so_reuseport", 0)])
    handler = grpc.unary_unary_rpc_method_handler(slow_call)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Slow", {"Call": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    assert port
    await server.start()
    return server, f"127.0.0.1:{port}"


async def wait_state(stub, instance: str, state: int, timeout_s: float = WAIT_S) -> health_pb2.HealthStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            st = await stub.CheckHealth(
                health_pb2.ServiceKey(service_name="calculator", instance_id=instance), timeout=1.0
            )
            if st.state == state:
                return st
        except grpc.aio.AioRpcError as err:
            if err.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                raise
        assert time.monotonic() < deadline, f"{instance} never reached {health_pb2.HealthState.Name(state)}"
        await asyncio.sleep(0.02)


def test_reporter_pushes_degraded_under_slow_calls_then_healthy_and_a_final_state(lab_dir):
    health = start_service("runtime.services.health", lab_dir, service="health", instance="health-1")
    try:

        async def scenario():
            reporter = HealthReporter(IDENTITY, address="", broker_address="", health_address=health.address)
            reporter.rule = DegradedRule(p99_ms=50, in_flight=100, recover_hold_s=0.3, window_s=1.0)
            server, address = await start_app_server(reporter)
            reporter.address = address
            try:
                await exercise(reporter, address)
            finally:
                await reporter.close()
                await server.stop(None)

        async def exercise(reporter: HealthReporter, address: str):
            async with (
                grpc.aio.insecure_channel(health.address) as ch,
                grpc.aio.insecure_channel(address) as app,
            ):
                stub = health_pb2_grpc.HealthServiceStub(ch)
                call = app.unary_unary("/test.Slow/Call")
                await reporter.start()
                await wait_state(stub, "calculator-7", health_pb2.STARTING)
                reporter.set(health_pb2.HEALTHY, "serving")
                await wait_state(stub, "calculator-7", health_pb2.HEALTHY)

                await asyncio.gather(*(call(b"0.08", timeout=5) for _ in range(25)))
                st = await wait_state(stub, "calculator-7", health_pb2.DEGRADED)
                assert "p99 latency" in st.message and st.address == address

                await asyncio.sleep(1.0)  # the slow calls leave the 1 s window
                await asyncio.gather(*(call(b"0", timeout=5) for _ in range(25)))
                st = await wait_state(stub, "calculator-7", health_pb2.HEALTHY)
                assert st.message.startswith("recovered")

                await reporter.close("test over")
                st = await wait_state(stub, "calculator-7", health_pb2.UNHEALTHY)
                assert st.message == "stopped: test over" and st.final
                await asyncio.sleep(0.2)
                hist = await stub.GetHealthHistory(
                    health_pb2.HealthHistoryRequest(instance_id="calculator-7")
                )
                assert "report stream lost" not in [e.reason for e in hist.events]

        asyncio.run(scenario())
    finally:
        health.stop()


def test_reporter_reconnects_through_the_broker_after_the_health_service_restarts(lab_dir):
    broker = start_service("runtime.services.broker", lab_dir, service="broker", instance="broker-1")
    procs = [broker]
    try:
        health = start_service(
            "runtime.services.health", lab_dir, service="health", instance="health-1", broker=broker.address
        )
        procs.append(health)

        async def scenario():
            reporter = HealthReporter(IDENTITY, address="127.0.0.1:1", broker_address=broker.address)
            await reporter.start()
            reporter.set(health_pb2.HEALTHY, "serving")
            async with grpc.aio.insecure_channel(health.address) as ch:
                await wait_state(health_pb2_grpc.HealthServiceStub(ch), "calculator-7", health_pb2.HEALTHY)

            health.signal(signal.SIGKILL)
            health.wait()
            killed_at = time.monotonic()
            again = start_service(
                "runtime.services.health",
                lab_dir,
                service="health",
                instance="health-1",
                broker=broker.address,
            )
            procs.append(again)
            async with grpc.aio.insecure_channel(again.address) as ch:
                stub = health_pb2_grpc.HealthServiceStub(ch)
                st = await wait_state(stub, "calculator-7", health_pb2.HEALTHY, timeout_s=REBUILD_LIMIT_S + 3)
                took = time.monotonic() - killed_at
                assert took <= REBUILD_LIMIT_S, f"rebuilt after {took:.2f} s"
                assert st.message == "serving" and reporter.connects == 2
                await reporter.close()

        asyncio.run(scenario())
    finally:
        for proc in reversed(procs):
            proc.stop()


def test_a_call_cancelled_while_its_handler_runs_leaves_nothing_in_flight():
    """In flight is counted around the handler, so a call cut off by its deadline still ends."""

    async def scenario():
        reporter = HealthReporter(IDENTITY, address="", broker_address="")
        server, address = await start_app_server(reporter)
        try:
            async with grpc.aio.insecure_channel(address) as app:
                call = app.unary_unary("/test.Slow/Call")
                slow = asyncio.ensure_future(call(b"5", timeout=0.3))
                deadline = time.monotonic() + WAIT_S
                while reporter.rule.in_flight != 1 and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                assert reporter.rule.in_flight == 1
                try:
                    await slow
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                while reporter.rule.in_flight and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                # A lost call would keep the instance DEGRADED on "calls in flight" forever.
                assert (reporter.rule.in_flight, reporter.rule.calls) == (0, 1)
        finally:
            await server.stop(None)

    asyncio.run(scenario())


def test_the_rules_p99_is_the_labs_one_percentile_definition():
    """The rule orders only the top 1 %; it must read the same p99 as every benchmark."""
    rng = random.Random(7)
    for n in (MIN_SAMPLES, 21, 99, 100, 101, 1000, 4096):
        for _ in range(20):
            values = [rng.expovariate(1 / 20) for _ in range(n)]
            assert p99_of(values) == pytest.approx(percentile(values, 99), rel=1e-12, abs=1e-12), n
