"""connect(): round robin over real calculator processes, following the broker's watch stream."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from service_process import ServiceProcess, start_service, stop_all

from calculator.v1 import calculator_pb2, calculator_pb2_grpc
from runtime.client import connect, connect_aio
from runtime.errors import DiscoveryError
from runtime.v1 import broker_pb2, broker_pb2_grpc, health_pb2

CALC = "calculator.v1.CalculatorService"
WAIT_S = 5.0


@pytest.fixture
def broker(lab_dir: Path) -> Iterator[ServiceProcess]:
    proc = start_service("runtime.services.broker", lab_dir, service="broker", instance="broker-1")
    yield proc
    proc.stop()


@pytest.fixture
def calculators(lab_dir: Path, broker: ServiceProcess) -> Iterator[list[ServiceProcess]]:
    procs = [
        start_service(
            "calculator.server",
            lab_dir,
            service="calculator",
            instance=f"calculator-{n}",
            broker=broker.address,
        )
        for n in (1, 2)
    ]
    yield procs
    stop_all(procs)


@pytest.fixture
def broker_stub(broker: ServiceProcess) -> Iterator[broker_pb2_grpc.BrokerServiceStub]:
    with grpc.insecure_channel(broker.address) as channel:
        yield broker_pb2_grpc.BrokerServiceStub(channel)


def served_by(stub: calculator_pb2_grpc.CalculatorServiceStub, calls: int) -> list[str]:
    return [
        stub.Add(calculator_pb2.AddRequest(a=1, b=2), timeout=WAIT_S).served_by.instance_id
        for _ in range(calls)
    ]


def wait_rotation(channel, want: list[str], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while sorted(i.instance_id for i in channel.instances()) != want:
        if time.monotonic() > deadline:
            raise AssertionError(f"rotation is {[i.instance_id for i in channel.instances()]}, wanted {want}")
        time.sleep(0.02)


def wait_registered(stub, want: list[str]) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        found = stub.LookupService(broker_pb2.LookupServiceRequest(service_name="calculator"), timeout=WAIT_S)
        if sorted(i.instance_id for i in found.instances) == want:
            return
        assert time.monotonic() < deadline, f"registered: {[i.instance_id for i in found.instances]}"
        time.sleep(0.05)


def test_round_robin_and_killed_instance_leaves(calculators, broker: ServiceProcess, broker_stub) -> None:
    wait_registered(broker_stub, ["calculator-1", "calculator-2"])
    with connect(CALC, broker.address) as channel:
        stub = calculator_pb2_grpc.CalculatorServiceStub(channel)
        first = served_by(stub, 6)
        assert sorted(set(first)) == ["calculator-1", "calculator-2"]
        assert all(a != b for a, b in zip(first, first[1:], strict=False)), f"not round robin: {first}"
        victim, survivor = calculators[0], "calculator-2"
        victim.signal(signal.SIGKILL)
        victim.wait()
        broker_stub.ReportExit(
            broker_pb2.ReportExitRequest(
                instance_id="calculator-1", pid=victim.pid, reason="process exited (SIGKILL)"
            ),
            timeout=WAIT_S,
        )
        wait_rotation(channel, [survivor], timeout_s=1.0)
        assert served_by(stub, 4) == [survivor] * 4


def test_unhealthy_leaves_and_new_instance_joins(
    calculators, lab_dir: Path, broker: ServiceProcess, broker_stub
) -> None:
    wait_registered(broker_stub, ["calculator-1", "calculator-2"])
    with connect("calculator", broker.address) as channel:
        stub = calculator_pb2_grpc.CalculatorServiceStub(channel)
        broker_stub.SetInstanceHealth(
            broker_pb2.SetInstanceHealthRequest(instance_id="calculator-2", state=health_pb2.UNHEALTHY),
            timeout=WAIT_S,
        )
        wait_rotation(channel, ["calculator-1"], timeout_s=1.0)
        assert served_by(stub, 3) == ["calculator-1"] * 3
        third = start_service(
            "calculator.server", lab_dir, service="calculator", instance="calculator-3", broker=broker.address
        )
        try:
            wait_rotation(channel, ["calculator-1", "calculator-3"])
            assert set(served_by(stub, 4)) == {"calculator-1", "calculator-3"}
        finally:
            third.signal(signal.SIGTERM)  # reaped with the others by the fixture's stop_all
            calculators.append(third)


def test_unavailable_instance_is_retried_on_the_next(
    calculators, broker: ServiceProcess, broker_stub
) -> None:
    wait_registered(broker_stub, ["calculator-1", "calculator-2"])
    with connect(CALC, broker.address) as channel:
        stub = calculator_pb2_grpc.CalculatorServiceStub(channel)
        victim = calculators[0]
        victim.signal(signal.SIGKILL)  # nobody tells the broker: the channel still lists it for a while
        victim.wait()
        assert served_by(stub, 4) == ["calculator-2"] * 4


def test_no_instances(broker: ServiceProcess) -> None:
    with pytest.raises(DiscoveryError, match="no instances of calculator.v1.CalculatorService"):
        connect(CALC, broker.address)


def test_unreachable_broker_names_the_address() -> None:
    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    started = time.monotonic()
    with pytest.raises(DiscoveryError, match=f"broker at {address} is unreachable"):
        connect(CALC, address, timeout_s=2.0)
    assert time.monotonic() - started < 3.0


def test_no_broker_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_BROKER_ADDR", raising=False)
    with pytest.raises(DiscoveryError, match="LAB_BROKER_ADDR"):
        connect(CALC)


def test_connect_aio_round_robin_and_removal(calculators, broker: ServiceProcess, broker_stub) -> None:
    wait_registered(broker_stub, ["calculator-1", "calculator-2"])

    async def scenario() -> tuple[set[str], list[str]]:
        async with await connect_aio("CalculatorService", broker.address) as channel:
            stub = calculator_pb2_grpc.CalculatorServiceStub(channel)
            request = calculator_pb2.AddRequest(a=1, b=2)
            before = {(await stub.Add(request, timeout=WAIT_S)).served_by.instance_id for _ in range(4)}
            # (ReportExit would do too, but the live instance would soon register again.)
            unhealthy = broker_pb2.SetInstanceHealthRequest(
                instance_id="calculator-1", state=health_pb2.UNHEALTHY
            )
            broker_stub.SetInstanceHealth(unhealthy, timeout=WAIT_S)
            deadline = time.monotonic() + 1.0
            while [i.instance_id for i in channel.rotation.instances()] != ["calculator-2"]:
                assert time.monotonic() < deadline, "the removed instance stayed in the rotation"
                await asyncio.sleep(0.02)
            after = [(await stub.Add(request, timeout=WAIT_S)).served_by.instance_id for _ in range(3)]
            return before, after

    before, after = asyncio.run(scenario())
    assert before == {"calculator-1", "calculator-2"}
    assert after == ["calculator-2"] * 3


def test_connect_aio_no_instances(broker: ServiceProcess) -> None:
    with pytest.raises(DiscoveryError, match="no instances of calculator.v1.CalculatorService"):
        asyncio.run(connect_aio(CALC, broker.address))


def test_follows_a_restarted_broker(calculators, lab_dir: Path, broker: ServiceProcess, broker_stub) -> None:
    """The watch cannot resume on a new broker (its revisions are newer): it lists again."""
    wait_registered(broker_stub, ["calculator-1", "calculator-2"])
    with connect(CALC, broker.address) as channel:
        stub = calculator_pb2_grpc.CalculatorServiceStub(channel)
        old_revision = channel.rotation.revision
        port = broker.port
        assert broker.stop() == 0
        assert len(served_by(stub, 2)) == 2, "calls go on while the broker is down"
        second = start_service(
            "runtime.services.broker", lab_dir, service="broker", instance="broker-1",
            env={"LAB_PORT": str(port), "LAB_PORT_STRICT": "1"},
        )  # fmt: skip
        try:
            with grpc.insecure_channel(second.address) as raw:
                new_stub = broker_pb2_grpc.BrokerServiceStub(raw)
                wait_registered(new_stub, ["calculator-1", "calculator-2"])
                unhealthy = broker_pb2.SetInstanceHealthRequest(
                    instance_id="calculator-1", state=health_pb2.UNHEALTHY
                )
                new_stub.SetInstanceHealth(unhealthy, timeout=WAIT_S)
            wait_rotation(channel, ["calculator-2"], timeout_s=4.0)
            assert channel.rotation.revision > old_revision
            assert served_by(stub, 2) == ["calculator-2"] * 2
        finally:
            second.stop()
