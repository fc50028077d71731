"""The broker's registry as plain bookkeeping: leases, name matching, health, revisions, history."""

from __future__ import annotations

import pytest

from runtime.services.broker.registry import (
    ADDED,
    REMOVED,
    UPDATED,
    Registry,
    RegistryFull,
    RevisionNotKept,
    UnknownLease,
)
from runtime.v1 import broker_pb2, health_pb2


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def calc(
    instance_id: str = "calculator-1", *, role: str = "", pid: int = 0, address: str = "127.0.0.1:5000"
) -> broker_pb2.ServiceInstance:
    return broker_pb2.ServiceInstance(
        service_name="calculator",
        instance_id=instance_id,
        address=address,
        grpc_services=["calculator.v1.CalculatorService"],
        role=role,
        pid=pid,
    )


def ids(instances) -> list[str]:
    return sorted(i.instance_id for i in instances)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def reg(clock: FakeClock) -> Registry:
    return Registry(clock=clock, history_limit=5)


def test_lookup_matches_lab_full_and_short_names(reg: Registry) -> None:
    reg.register(calc())
    for name in ("calculator", "calculator.v1.CalculatorService", "CalculatorService"):
        assert ids(reg.lookup(name)) == ["calculator-1"], name
    assert reg.lookup("Calculator") == []
    assert reg.lookup("v1.CalculatorService") == []


def test_role_filter(reg: Registry) -> None:
    reg.register(calc("calculator-1", role="primary"))
    reg.register(calc("calculator-2", role="replica"))
    assert ids(reg.lookup("calculator", role="replica")) == ["calculator-2"]
    assert ids(reg.lookup("calculator")) == ["calculator-1", "calculator-2"]


def test_register_rejects_missing_fields(reg: Registry) -> None:
    with pytest.raises(ValueError, match="service_name is empty"):
        reg.register(broker_pb2.ServiceInstance(instance_id="x", address="a"))
    with pytest.raises(ValueError, match="instance_id is empty"):
        reg.register(broker_pb2.ServiceInstance(service_name="x", address="a"))
    with pytest.raises(ValueError, match="address is empty"):
        reg.register(broker_pb2.ServiceInstance(service_name="x", instance_id="x-1"))
    with pytest.raises(ValueError, match="ttl_ms 5 is out of range"):
        reg.register(calc(), ttl_ms=5)


def test_register_refuses_names_and_sizes_the_lab_would_not_use(reg: Registry) -> None:
    # The same name rule as lab.yaml; an address is host:port; nothing echoes 100 KB back.
    for instance, needle in [
        (calc("../etc"), "instance.instance_id '../etc' is not a valid name"),
        (calc("calc 1"), "is not a valid name"),
        (calc("x" * 100_000), "(100000 characters)"),
        (calc(address="no-port"), "is not host:port"),
        (calc(address="127.0.0.1:99999"), "is not host:port"),
        (calc(role="r" * 100), "instance.role is 100 characters long"),
    ]:
        with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")) as err:
            reg.register(instance)
        assert len(str(err.value)) < 400
    assert reg.lookup("calculator") == []


def test_lease_expires_unless_kept_alive(reg: Registry, clock: FakeClock) -> None:
    lease, ttl, _ = reg.register(calc(), ttl_ms=1000)
    assert ttl == 1000
    clock.now += 0.9
    reg.keepalive(lease)
    clock.now += 0.9
    assert reg.expire() == []
    clock.now += 0.2
    assert reg.expire() == ["calculator-1"]
    assert reg.lookup("calculator") == []
    assert reg.events_since(reg.revision - 1)[0].reason == "lease expired"
    with pytest.raises(UnknownLease):
        reg.keepalive(lease)


def test_permanent_entry_never_expires(reg: Registry, clock: FakeClock) -> None:
    reg.register(calc(), permanent=True)
    clock.now += 10_000
    assert reg.expire() == []


def test_reregister_replaces_lease_and_old_lease_cannot_remove(reg: Registry) -> None:
    old, _, _ = reg.register(calc())
    new, _, _ = reg.register(calc())
    assert old != new
    assert reg.drop_lease(old, "keepalive stream lost") is False
    assert reg.deregister("calculator-1", lease_id=old) is False
    assert ids(reg.lookup("calculator")) == ["calculator-1"]
    assert reg.events_since(reg.revision - 1)[0].type == UPDATED
    assert reg.deregister("calculator-1", lease_id=new, reason="bye") is True
    assert reg.events_since(reg.revision - 1)[0].reason == "deregistered: bye"


def test_report_exit_only_for_that_pid(reg: Registry) -> None:
    reg.register(calc(pid=42))
    assert reg.report_exit("calculator-1", pid=41, reason="process exited (SIGKILL)") is False
    assert reg.report_exit("calculator-1", pid=42, reason="process exited (SIGKILL)") is True
    event = reg.events_since(reg.revision - 1)[0]
    assert (event.type, event.reason) == (REMOVED, "process exited (SIGKILL)")


def test_unhealthy_hidden_from_lookup_until_healthy(reg: Registry) -> None:
    reg.register(calc())
    assert reg.set_health("calculator-1", health_pb2.UNHEALTHY, "probe failed") is True
    assert reg.lookup("calculator") == []
    assert ids(reg.lookup("calculator", include_unhealthy=True)) == ["calculator-1"]
    event = reg.events_since(reg.revision - 1)[0]
    assert (event.type, event.reason, event.instance.health) == (
        UPDATED,
        "unhealthy: probe failed",
        health_pb2.UNHEALTHY,
    )
    rev = reg.revision
    reg.set_health("calculator-1", health_pb2.UNHEALTHY, "still")
    assert reg.revision == rev, "the same state again is no change"
    reg.set_health("calculator-1", health_pb2.DEGRADED)
    assert ids(reg.lookup("calculator")) == ["calculator-1"]
    assert reg.set_health("nobody-1", health_pb2.HEALTHY) is False


def test_revisions_resume_and_out_of_range(reg: Registry) -> None:
    start = reg.revision
    assert start > 1_000_000_000_000, "revisions start at the broker's start time, not at 0"
    assert reg.events_since(start) == []
    reg.register(calc("calculator-1"))
    reg.register(calc("calculator-2"))
    events = reg.events_since(start)
    assert [(e.type, e.instance.instance_id) for e in events] == [
        (ADDED, "calculator-1"),
        (ADDED, "calculator-2"),
    ]
    assert [e.revision for e in events] == [start + 1, start + 2]
    for n in range(3, 8):  # history keeps 5 events
        reg.register(calc(f"calculator-{n}"))
    with pytest.raises(
        RevisionNotKept, match=rf"revision {start} is no longer kept \(oldest kept is {start + 2}\)"
    ):
        reg.events_since(start)
    assert len(reg.events_since(start + 2)) == 5
    with pytest.raises(RevisionNotKept, match="newer than the broker's current revision"):
        reg.events_since(reg.revision + 1)


def test_snapshot_and_listeners(reg: Registry) -> None:
    seen: list[broker_pb2.ServiceEvent] = []
    reg.listeners.append(seen.append)
    reg.register(calc())
    reg.register(broker_pb2.ServiceInstance(service_name="logger", instance_id="logger-1", address="127.0.0.1:1"))
    snap = list(reg.snapshot_events("CalculatorService"))
    assert [(e.type, e.instance.instance_id, e.revision) for e in snap] == [
        (ADDED, "calculator-1", reg.revision)
    ]
    assert [e.instance.instance_id for e in seen] == ["calculator-1", "logger-1"]
    assert ids(reg.instances()) == ["calculator-1", "logger-1"]


def test_registry_is_bounded(clock: FakeClock) -> None:
    reg = Registry(clock=clock, max_instances=2)
    reg.register(calc("calculator-1"))
    reg.register(calc("calculator-2"))
    reg.register(calc("calculator-2"))  # replacing an instance is not growth
    with pytest.raises(RegistryFull, match="already holds 2 instances"):
        reg.register(calc("calculator-3"))
