"""The agent's fault set and the chaos rules, without processes: lists, TTL, caps, validation."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest

from runtime.agent.faults import MAX_CPU_THREADS, MAX_MEMORY_MB, MEMORY_CHUNK_MB, FaultSet
from runtime.errors import UsageError
from runtime.lab.chaos import fault_config, fault_type
from runtime.services.chaos.rules import config_problem, describe
from runtime.v1 import chaos_pb2


def fault(fid: str, ftype: int, expires_in_s: float = 0, **params) -> chaos_pb2.ActiveFault:
    now = time.time() * 1000
    return chaos_pb2.ActiveFault(
        fault_id=fid,
        config=chaos_pb2.FaultConfig(
            target_service="calculator", type=ftype, params=chaos_pb2.FaultParams(**params)
        ),
        created_at=int(now),
        expires_at=int(now + expires_in_s * 1000) if expires_in_s else 0,
    )


def hog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("chaos-cpu-hog-")]


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted(details)


def test_replace_starts_and_releases_cpu_hogs_within_the_cap() -> None:
    fs = FaultSet()
    try:
        fs.replace(
            [fault("a", chaos_pb2.CPU_HOG, cpu_threads=3), fault("b", chaos_pb2.CPU_HOG, cpu_threads=3)]
        )
        assert fs.cpu_threads == MAX_CPU_THREADS  # 3 + 1: the second one is cut to the cap
        assert len(hog_threads()) == MAX_CPU_THREADS
        fs.replace([fault("b", chaos_pb2.CPU_HOG, cpu_threads=3)])
        assert sorted(fs.faults) == ["b"]
    finally:
        fs.clear("test over")
    deadline = time.monotonic() + 2
    while hog_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not hog_threads()


def test_memory_leak_is_capped_and_released() -> None:
    fs = FaultSet()
    fs.replace(
        [
            fault("m1", chaos_pb2.MEMORY_LEAK, memory_mb=MAX_MEMORY_MB),
            fault("m2", chaos_pb2.MEMORY_LEAK, memory_mb=64),
        ]
    )
    asyncio.run(fs.grow_memory())
    assert fs.memory_mb == MAX_MEMORY_MB  # the second leak gets nothing beyond the cap
    fs.replace([fault("m2", chaos_pb2.MEMORY_LEAK, memory_mb=64)])
    assert fs.memory_mb == 0
    asyncio.run(fs.grow_memory())
    assert fs.memory_mb == 64 // MEMORY_CHUNK_MB * MEMORY_CHUNK_MB
    fs.clear("done")
    assert fs.memory_mb == 0


def test_ttl_expiry_and_already_expired_faults() -> None:
    fs = FaultSet()
    fs.replace(
        [
            fault("short", chaos_pb2.DELAY, expires_in_s=0.05, delay_ms=100),
            fault("long", chaos_pb2.DELAY, delay_ms=5),
        ]
    )
    assert sorted(fs.faults) == ["long", "short"]
    assert fs.expire(time.monotonic() + 0.2) == ["short"]
    expired = fault("old", chaos_pb2.DELAY, delay_ms=5)
    expired.expires_at = int(time.time() * 1000) - 1
    fs.replace([expired])
    assert fs.faults == {}


def test_apply_delays_fails_and_drops() -> None:
    async def run() -> None:
        fs = FaultSet()
        fs.replace([fault("d", chaos_pb2.DELAY, delay_ms=120)])
        started = time.monotonic()
        await fs.apply(FakeContext(), "/calculator.v1.CalculatorService/Add")
        assert time.monotonic() - started >= 0.12
        for ftype, params, text in [
            (chaos_pb2.ERROR_INJECT, {"error_rate": 1.0}, "injected fault f-5"),
            (chaos_pb2.PACKET_LOSS, {"packet_loss_pct": 100.0}, "injected packet loss"),
        ]:
            fs.replace([fault(f"f-{ftype}", ftype, **params)])
            ctx = FakeContext()
            with pytest.raises(Aborted):
                await fs.apply(ctx, "/calculator.v1.CalculatorService/Add")
            assert ctx.code == grpc.StatusCode.UNAVAILABLE and text in ctx.details
        fs.replace([fault("z", chaos_pb2.ERROR_INJECT, error_rate=0.0)])
        await fs.apply(FakeContext(), "/x/Y")  # rate 0: never fails

    asyncio.run(run())


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (chaos_pb2.FaultConfig(target_service="calculator"), "type is not set"),
        (chaos_pb2.FaultConfig(type=chaos_pb2.DELAY), "target_service is empty"),
        (
            chaos_pb2.FaultConfig(target_service="c", type=chaos_pb2.DELAY, duration_seconds=-1),
            "duration_seconds is -1",
        ),
        (chaos_pb2.FaultConfig(target_service="c", type=chaos_pb2.DELAY), "delay_ms is 0"),
        (
            chaos_pb2.FaultConfig(
                target_service="c", type=chaos_pb2.DELAY, params=chaos_pb2.FaultParams(delay_ms=10_001)
            ),
            "MAX_DELAY_MS",
        ),
        (
            chaos_pb2.FaultConfig(
                target_service="c",
                type=chaos_pb2.PACKET_LOSS,
                params=chaos_pb2.FaultParams(packet_loss_pct=-1),
            ),
            "0 to 100",
        ),
        (
            chaos_pb2.FaultConfig(
                target_service="c", type=chaos_pb2.ERROR_INJECT, params=chaos_pb2.FaultParams(error_rate=1.5)
            ),
            "0 to 1",
        ),
        (
            chaos_pb2.FaultConfig(
                target_service="c", type=chaos_pb2.CPU_HOG, params=chaos_pb2.FaultParams(cpu_threads=99)
            ),
            "MAX_CPU_THREADS",
        ),
        (
            chaos_pb2.FaultConfig(
                target_service="c", type=chaos_pb2.MEMORY_LEAK, params=chaos_pb2.FaultParams(memory_mb=10**6)
            ),
            "MAX_MEMORY_MB",
        ),
    ],
)
def test_config_problems_say_what_to_change(config: chaos_pb2.FaultConfig, words: str) -> None:
    assert words in config_problem(config)


def test_good_configs_and_crash_is_never_the_default() -> None:
    crash = chaos_pb2.FaultConfig(target_service="calculator", type=chaos_pb2.CRASH)
    assert crash.HasField("type") and config_problem(crash) == ""
    assert not chaos_pb2.FaultConfig(target_service="calculator").HasField("type")
    cfg = fault_config("calculator", "delay", 30, 1, delay_ms=500)
    assert config_problem(cfg) == ""
    assert describe(cfg) == "DELAY 500 ms on calculator-1 for 30 s"
    assert fault_type("packet-loss") == chaos_pb2.PACKET_LOSS and fault_type(0) == chaos_pb2.CRASH


def test_lab_side_usage_errors() -> None:
    with pytest.raises(ValueError, match="unknown fault kind 'latency'; use one of: crash, delay"):
        fault_type("latency")
    with pytest.raises(UsageError, match="DELAY takes delay_ms="):
        fault_config("calculator", "delay", delay=500)
    with pytest.raises(UsageError, match="CRASH takes no parameters"):
        fault_config("calculator", "crash", delay_ms=5)
    with pytest.raises(UsageError, match="instance must be a name"):
        fault_config("calculator", "delay", instance=1.5, delay_ms=5)
