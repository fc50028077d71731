"""The agent, seen from outside: a calculator process serves, registers, re-registers and stops cleanly."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from service_process import ServiceProcess, start_service

from runtime.v1 import broker_pb2, broker_pb2_grpc

WAIT_S = 5.0
CALC = "calculator.v1.CalculatorService"


@pytest.fixture
def broker(lab_dir: Path) -> Iterator[ServiceProcess]:
    proc = start_service("runtime.services.broker", lab_dir, service="broker", instance="broker-1")
    yield proc
    proc.stop()


def start_calculator(lab_dir: Path, broker: ServiceProcess, n: int = 1, **kw) -> ServiceProcess:
    return start_service(
        "calculator.server",
        lab_dir,
        service="calculator",
        instance=f"calculator-{n}",
        broker=broker.address,
        **kw,
    )


def wait_lookup(
    stub, name: str, want: list[str], timeout_s: float = WAIT_S
) -> list[broker_pb2.ServiceInstance]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = stub.LookupService(
            broker_pb2.LookupServiceRequest(service_name=name), timeout=WAIT_S
        ).instances
        if sorted(i.instance_id for i in found) == want:
            return list(found)
        if time.monotonic() > deadline:
            raise AssertionError(f"lookup of {name} gave {[i.instance_id for i in found]}, wanted {want}")
        time.sleep(0.05)


def test_serves_health_reflection_registers_and_stops(lab_dir: Path, broker: ServiceProcess) -> None:
    calc = start_calculator(lab_dir, broker)
    try:
        with grpc.insecure_channel(calc.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", CALC):
                status = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=WAIT_S).status
                assert status == health_pb2.HealthCheckResponse.SERVING, name
            reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
            answer = next(
                reflect.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=WAIT_S
                )
            )
            listed = {s.name for s in answer.list_services_response.service}
            assert {CALC, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed
        with grpc.insecure_channel(broker.address) as channel:
            stub = broker_pb2_grpc.BrokerServiceStub(channel)
            (found,) = wait_lookup(stub, "CalculatorService", ["calculator-1"])
            assert found.address == calc.address
            assert (found.pid, found.language, list(found.grpc_services)) == (calc.pid, "python", [CALC])
            rev = stub.ListServices(broker_pb2.ListServicesRequest(), timeout=WAIT_S).revision
            calc.signal(15)
            assert calc.wait() == 0
            events = stub.WatchServices(
                broker_pb2.WatchServicesRequest(service_name=CALC, from_revision=rev), timeout=1.0
            )
            removed = next(events)
            assert (removed.type, removed.reason) == (
                broker_pb2.SERVICE_EVENT_TYPE_REMOVED,
                "deregistered: shutting down",
            )
            events.cancel()
    finally:
        calc.stop()


def test_registers_again_after_broker_restart(lab_dir: Path, broker: ServiceProcess) -> None:
    calc = start_calculator(lab_dir, broker)
    second = None
    try:
        port = broker.port
        assert broker.stop() == 0
        second = start_service(
            "runtime.services.broker",
            lab_dir,
            service="broker",
            instance="broker-1",
            env={"LAB_PORT": str(port), "LAB_PORT_STRICT": "1"},
        )
        assert second.port == port
        with grpc.insecure_channel(second.address) as channel:
            wait_lookup(
                broker_pb2_grpc.BrokerServiceStub(channel), "calculator", ["calculator-1"], timeout_s=8.0
            )
        assert calc.proc.poll() is None, "the calculator must survive the broker restart"
    finally:
        calc.stop()
        if second is not None:
            second.stop()


def test_started_before_its_broker_it_says_ready_once_registered(lab_dir: Path) -> None:
    # The lab spawns the broker's dependents beside it (lab.yaml `depends_on: {broker: started}`):
    # the agent waits for the broker, so READY still means "found by a lookup".
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    calc = start_service(
        "calculator.server",
        lab_dir,
        service="calculator",
        instance="calculator-1",
        broker=f"127.0.0.1:{port}",
        ready=False,
    )
    broker = None
    try:
        time.sleep(3.5)  # longer than the agent used to wait before it said READY unregistered
        assert not any(line.startswith("READY") for line in calc.lines), calc.lines
        broker = start_service(
            "runtime.services.broker",
            lab_dir,
            service="broker",
            instance="broker-1",
            env={"LAB_PORT": str(port), "LAB_PORT_STRICT": "1"},
        )
        calc.wait_ready()
        with grpc.insecure_channel(broker.address) as channel:
            stub = broker_pb2_grpc.BrokerServiceStub(channel)
            found = stub.LookupService(
                broker_pb2.LookupServiceRequest(service_name="calculator"), timeout=WAIT_S
            )
        assert [i.instance_id for i in found.instances] == ["calculator-1"]
        assert not any("did not accept the registration" in line for line in calc.lines), calc.lines
    finally:
        calc.stop()
        if broker is not None:
            broker.stop()


def test_exits_when_supervisor_is_gone(lab_dir: Path) -> None:
    proc = start_service(
        "calculator.server",
        lab_dir,
        service="calculator",
        instance="calculator-1",
        env={"LAB_SUPERVISOR_PID": str(os.getpid() + 1_000_000)},
        ready=False,
    )
    assert proc.wait(timeout_s=10) != 0
    assert "the supervisor (pid" in "\n".join(proc.lines)
    assert not any(line.startswith("READY") for line in proc.lines)


def test_strict_port_in_use_names_the_port(lab_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_service(
            "runtime.services.broker",
            lab_dir,
            service="broker",
            instance="broker-1",
            env={"LAB_PORT": str(port), "LAB_PORT_STRICT": "1"},
            ready=False,
        )
        assert proc.wait(timeout_s=10) == 1
    assert f"cannot bind 127.0.0.1:{port}" in "\n".join(proc.lines)


def test_taken_port_falls_back_when_not_strict(lab_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_service(
            "runtime.services.broker",
            lab_dir,
            service="broker",
            instance="broker-1",
            env={"LAB_PORT": str(port)},
        )
        try:
            assert proc.port not in (0, port)
        finally:
            assert proc.stop() == 0
