"""The broker over loopback gRPC: leases, lookups, health, watch, statuses (its servicer in-process, on
the local registry and on etcd); registering itself and exiting on SIGTERM (a real subprocess)."""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from etcd_cluster import store_backend, unique_prefix  # noqa: F401 (fixture)
from service_process import ServiceProcess, start_service

from runtime.services.broker.etcd_registry import EtcdRegistry
from runtime.services.broker.registry import Registry
from runtime.services.broker.servicer import BrokerServicer
from runtime.v1 import broker_pb2, broker_pb2_grpc, health_pb2

ADDED = broker_pb2.SERVICE_EVENT_TYPE_ADDED
REMOVED = broker_pb2.SERVICE_EVENT_TYPE_REMOVED
UPDATED = broker_pb2.SERVICE_EVENT_TYPE_UPDATED
SNAPSHOT_END = broker_pb2.SERVICE_EVENT_TYPE_SNAPSHOT_END
WAIT_S = 5.0
_names = itertools.count(1)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    proc = start_service(
        "runtime.services.broker",
        tmp_path_factory.mktemp("broker-lab"),
        service="broker",
        instance="broker-1",
    )
    yield proc
    assert proc.stop() == 0


@pytest.fixture
def real_stub(broker: ServiceProcess) -> Iterator[broker_pb2_grpc.BrokerServiceStub]:
    with grpc.insecure_channel(broker.address) as channel:
        yield broker_pb2_grpc.BrokerServiceStub(channel)


class InProcessBroker:
    """The broker's servicer and lease expiry served in this process, as main() wires them: on the
    local registry, or on the module's etcd member under a fresh key prefix."""

    def __init__(self, aio_server, etcd=None) -> None:
        self.etcd: EtcdRegistry | None = None

        def add(server) -> None:
            if etcd is None:
                self.servicer = BrokerServicer(Registry())
            else:
                self.etcd = EtcdRegistry(etcd, prefix=unique_prefix())
                self.servicer = BrokerServicer(self.etcd)
            broker_pb2_grpc.add_BrokerServiceServicer_to_server(self.servicer, server)
            asyncio.get_running_loop().create_task(self.servicer.expire_leases(), name="broker-lease-expiry")

        self.server = aio_server(add)
        self.server.run(self.servicer.registry.start())

    def compact(self) -> None:
        """etcd: compact its history up to now (the local registry keeps a bounded history itself)."""
        if self.etcd is not None:
            etcd = self.etcd

            async def compact() -> None:
                revision = await etcd._revision()
                await etcd.session.call(lambda c: c.compact(revision))

            self.server.run(compact())

    def stop(self) -> None:
        async def close() -> None:
            self.servicer.close()
            await self.servicer.registry.close()

        self.server.run(close())
        self.server.stop()


@pytest.fixture
def inproc(aio_server, store_backend) -> Iterator[InProcessBroker]:  # noqa: F811 (the imported fixture)
    broker = InProcessBroker(aio_server, store_backend.choice)
    yield broker
    broker.stop()


@pytest.fixture
def stub(inproc: InProcessBroker) -> Iterator[broker_pb2_grpc.BrokerServiceStub]:
    """A stub on an in-process broker (the logic under test; the process is tested with ``real_stub``)."""
    with grpc.insecure_channel(inproc.server.address) as channel:
        yield broker_pb2_grpc.BrokerServiceStub(channel)


def unique(service: str = "calc") -> str:
    """A service name no other test uses (the module shares one broker)."""
    return f"{service}{next(_names)}"


def instance(service: str, n: int = 1, *, role: str = "", pid: int = 0) -> broker_pb2.ServiceInstance:
    return broker_pb2.ServiceInstance(
        service_name=service,
        instance_id=f"{service}-{n}",
        address=f"127.0.0.1:{40000 + n}",
        grpc_services=[f"{service}.v1.{service.capitalize()}Service"],
        role=role,
        pid=pid,
        language="python",
    )


def lookup_ids(stub, name: str, **kw) -> list[str]:
    response = stub.LookupService(broker_pb2.LookupServiceRequest(service_name=name, **kw), timeout=WAIT_S)
    return sorted(i.instance_id for i in response.instances)


class Watch:
    """A WatchServices stream read by a thread into a queue, so every wait has a timeout."""

    def __init__(self, stub, service: str = "", from_revision: int = 0) -> None:
        self.call = stub.WatchServices(
            broker_pb2.WatchServicesRequest(service_name=service, from_revision=from_revision)
        )
        self.events: queue.Queue[broker_pb2.ServiceEvent | grpc.RpcError] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="test-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.call:
                self.events.put(event)
        except grpc.RpcError as exc:
            self.events.put(exc)

    def next(self, timeout_s: float = WAIT_S) -> broker_pb2.ServiceEvent:
        item = self.events.get(timeout=timeout_s)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def error(self, timeout_s: float = WAIT_S) -> grpc.RpcError:
        item = self.events.get(timeout=timeout_s)
        assert isinstance(item, grpc.RpcError), f"expected the stream to end with an error, got {item}"
        return item

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(timeout=WAIT_S)


def test_broker_lists_itself(real_stub) -> None:
    listed = real_stub.ListServices(broker_pb2.ListServicesRequest(), timeout=WAIT_S).instances
    me = [i for i in listed if i.service_name == "broker"]
    assert len(me) == 1
    assert me[0].grpc_services == ["runtime.v1.BrokerService"]
    assert lookup_ids(real_stub, "BrokerService") == ["broker-1"]


def test_register_and_lookup_by_three_names_and_role(stub) -> None:
    name = unique()
    stub.Register(broker_pb2.RegisterRequest(instance=instance(name, 1, role="primary")), timeout=WAIT_S)
    response = stub.Register(
        broker_pb2.RegisterRequest(instance=instance(name, 2, role="replica")), timeout=WAIT_S
    )
    assert response.ttl_ms == 5000 and response.lease_id
    full = f"{name}.v1.{name.capitalize()}Service"
    for asked in (name, full, f"{name.capitalize()}Service"):
        assert lookup_ids(stub, asked) == [f"{name}-1", f"{name}-2"], asked
    assert lookup_ids(stub, name, role="replica") == [f"{name}-2"]
    listed = stub.ListServices(broker_pb2.ListServicesRequest(), timeout=WAIT_S)
    assert {f"{name}-1", f"{name}-2"} <= {i.instance_id for i in listed.instances}
    removed = stub.Deregister(
        broker_pb2.DeregisterRequest(instance_id=f"{name}-1", reason="test"), timeout=WAIT_S
    )
    assert removed.removed
    assert lookup_ids(stub, name) == [f"{name}-2"]


def test_bad_input_statuses(stub) -> None:
    cases = [
        (stub.LookupService, broker_pb2.LookupServiceRequest(), "service_name is empty"),
        (
            stub.Register,
            broker_pb2.RegisterRequest(instance=broker_pb2.ServiceInstance()),
            "service_name is empty",
        ),
        (
            stub.Register,
            broker_pb2.RegisterRequest(instance=instance(unique()), ttl_ms=1),
            "ttl_ms 1 is out of range",
        ),
        (stub.Deregister, broker_pb2.DeregisterRequest(), "instance_id is empty"),
        (stub.ReportExit, broker_pb2.ReportExitRequest(), "instance_id is empty"),
        (stub.SetInstanceHealth, broker_pb2.SetInstanceHealthRequest(state=2), "instance_id is empty"),
        (
            stub.SetInstanceHealth,
            broker_pb2.SetInstanceHealthRequest(instance_id="x", state=99),
            "not a HealthState",
        ),
    ]
    for method, request, text in cases:
        with pytest.raises(grpc.RpcError) as info:
            method(request, timeout=WAIT_S)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert text in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        list(stub.WatchServices(broker_pb2.WatchServicesRequest(from_revision=-1), timeout=WAIT_S))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_lease_expires_without_keepalive(stub) -> None:
    name = unique()
    watch = Watch(stub, name)
    try:
        assert watch.next().type == SNAPSHOT_END
        stub.Register(broker_pb2.RegisterRequest(instance=instance(name), ttl_ms=300), timeout=WAIT_S)
        started = time.monotonic()
        assert watch.next().type == ADDED
        gone = watch.next()
        assert (gone.type, gone.reason) == (REMOVED, "lease expired")
        assert 0.25 < time.monotonic() - started < 1.5
        assert lookup_ids(stub, name) == []
    finally:
        watch.close()


def test_keepalive_holds_lease_and_broken_stream_removes(stub) -> None:
    name = unique()
    lease = stub.Register(
        broker_pb2.RegisterRequest(instance=instance(name), ttl_ms=400), timeout=WAIT_S
    ).lease_id
    requests: queue.Queue[broker_pb2.KeepAliveRequest | None] = queue.Queue()
    call = stub.KeepAlive(iter(requests.get, None))
    watch = Watch(stub, name)
    try:
        assert watch.next().type == ADDED
        assert watch.next().type == SNAPSHOT_END
        for _ in range(8):  # 8 x 0.1 s = twice the TTL
            requests.put(broker_pb2.KeepAliveRequest(lease_id=lease))
            response = next(call)
            assert response.lease_id == lease and response.ttl_ms == 400
            time.sleep(0.1)
        assert lookup_ids(stub, name) == [f"{name}-1"]
        call.cancel()  # the stream breaks: the instance goes now, not after its TTL
        gone = watch.next(timeout_s=1.0)
        assert (gone.type, gone.reason) == (REMOVED, "keepalive stream lost")
    finally:
        call.cancel()
        watch.close()


def test_keepalive_unknown_lease_is_not_found(stub) -> None:
    call = stub.KeepAlive(iter([broker_pb2.KeepAliveRequest(lease_id="lease-nope")]), timeout=WAIT_S)
    with pytest.raises(grpc.RpcError) as info:
        list(call)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "register again" in info.value.details()


def test_report_exit_removes_at_once(stub) -> None:
    name = unique()
    stub.Register(broker_pb2.RegisterRequest(instance=instance(name, pid=4242)), timeout=WAIT_S)
    other_pid = stub.ReportExit(broker_pb2.ReportExitRequest(instance_id=f"{name}-1", pid=1), timeout=WAIT_S)
    assert not other_pid.removed
    watch = Watch(stub, name)
    try:
        watch.next(), watch.next()  # snapshot + end
        response = stub.ReportExit(
            broker_pb2.ReportExitRequest(
                instance_id=f"{name}-1", pid=4242, reason="process exited (SIGKILL)"
            ),
            timeout=WAIT_S,
        )
        assert response.removed
        event = watch.next()
        assert (event.type, event.reason, event.revision) == (
            REMOVED,
            "process exited (SIGKILL)",
            response.revision,
        )
        assert lookup_ids(stub, name) == []
    finally:
        watch.close()


def test_unhealthy_hides_until_healthy(stub) -> None:
    name = unique()
    stub.Register(broker_pb2.RegisterRequest(instance=instance(name)), timeout=WAIT_S)
    watch = Watch(stub, name)
    try:
        watch.next(), watch.next()
        known = stub.SetInstanceHealth(
            broker_pb2.SetInstanceHealthRequest(
                instance_id=f"{name}-1", state=health_pb2.UNHEALTHY, reason="crashed"
            ),
            timeout=WAIT_S,
        )
        assert known.known
        event = watch.next()
        assert (event.type, event.instance.health, event.reason) == (
            UPDATED,
            health_pb2.UNHEALTHY,
            "unhealthy: crashed",
        )
        assert lookup_ids(stub, name) == []
        assert lookup_ids(stub, name, include_unhealthy=True) == [f"{name}-1"]
        stub.SetInstanceHealth(
            broker_pb2.SetInstanceHealthRequest(instance_id=f"{name}-1", state=health_pb2.HEALTHY),
            timeout=WAIT_S,
        )
        assert watch.next().instance.health == health_pb2.HEALTHY
        assert lookup_ids(stub, name) == [f"{name}-1"]
        unknown = stub.SetInstanceHealth(
            broker_pb2.SetInstanceHealthRequest(instance_id="nobody-1", state=health_pb2.HEALTHY),
            timeout=WAIT_S,
        )
        assert not unknown.known
    finally:
        watch.close()


def test_watch_snapshot_live_resume_and_out_of_range(stub, inproc) -> None:
    name = unique()
    stub.Register(broker_pb2.RegisterRequest(instance=instance(name, 1)), timeout=WAIT_S)
    watch = Watch(stub, name)
    try:
        first = watch.next()
        end = watch.next()
        assert (first.type, first.instance.instance_id) == (ADDED, f"{name}-1")
        assert end.type == SNAPSHOT_END and end.revision == first.revision
        stub.Register(broker_pb2.RegisterRequest(instance=instance(name, 2)), timeout=WAIT_S)
        live = watch.next()
        assert (live.type, live.instance.instance_id) == (ADDED, f"{name}-2")
        assert live.revision > end.revision
    finally:
        watch.close()
    # Changes while nobody watches, then resume after the last revision seen: nothing is missed.
    stub.Deregister(broker_pb2.DeregisterRequest(instance_id=f"{name}-1"), timeout=WAIT_S)
    stub.Register(broker_pb2.RegisterRequest(instance=instance(name, 3)), timeout=WAIT_S)
    resumed = Watch(stub, name, from_revision=live.revision)
    try:
        missed = [resumed.next(), resumed.next()]
        assert [(e.type, e.instance.instance_id) for e in missed] == [
            (REMOVED, f"{name}-1"),
            (ADDED, f"{name}-3"),
        ]
    finally:
        resumed.close()
    inproc.compact()  # etcd keeps every revision until compacted; the local history is bounded
    stale = Watch(stub, name, from_revision=1)
    try:
        error = stale.error()
        assert error.code() == grpc.StatusCode.OUT_OF_RANGE
        assert "revision 1 is no longer kept (oldest kept is" in error.details()
        assert "watch again from revision 0" in error.details()
    finally:
        stale.close()


def test_slow_watcher_is_ended_with_resource_exhausted() -> None:
    """A watcher whose queue overflows is told where to resume (in-process server, real gRPC)."""

    async def scenario() -> tuple[grpc.StatusCode, str, int]:
        registry = Registry()
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        broker_pb2_grpc.add_BrokerServiceServicer_to_server(
            BrokerServicer(registry, watch_queue_limit=3), server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        assert port
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = broker_pb2_grpc.BrokerServiceStub(channel)
                call = stub.WatchServices(broker_pb2.WatchServicesRequest())
                assert (await asyncio.wait_for(call.read(), WAIT_S)).type == SNAPSHOT_END
                start = registry.revision
                for n in range(10):  # a burst with no await in between: the queue of 3 overflows
                    registry.register(instance("burst", n))
                seen = []
                try:
                    while True:
                        event = await asyncio.wait_for(call.read(), WAIT_S)
                        assert event is not grpc.aio.EOF, "the stream must end with an error, not cleanly"
                        seen.append(event.revision)
                except grpc.aio.AioRpcError as exc:
                    assert seen == [start + 1, start + 2, start + 3][: len(seen)]
                    return exc.code(), exc.details(), (seen[-1] if seen else start)
        finally:
            await server.stop(grace=None)
        raise AssertionError("unreachable")

    code, details, last = asyncio.run(scenario())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"from_revision={last}" in details


def test_sigterm_exits_zero(tmp_path: Path) -> None:
    proc = start_service("runtime.services.broker", tmp_path, service="broker", instance="broker-9")
    proc.signal(15)
    assert proc.wait() == 0


def test_report_exit_right_after_stream_loss_names_the_exit(stub) -> None:
    """A crash breaks the keepalive stream first; the supervisor's reason still wins."""
    name = unique()
    lease = stub.Register(
        broker_pb2.RegisterRequest(instance=instance(name, pid=77)), timeout=WAIT_S
    ).lease_id
    requests: queue.Queue[broker_pb2.KeepAliveRequest | None] = queue.Queue()
    call = stub.KeepAlive(iter(requests.get, None))
    watch = Watch(stub, name)
    try:
        watch.next(), watch.next()
        requests.put(broker_pb2.KeepAliveRequest(lease_id=lease))
        next(call)
        call.cancel()
        stub.ReportExit(
            broker_pb2.ReportExitRequest(instance_id=f"{name}-1", pid=77, reason="process exited (SIGKILL)"),
            timeout=WAIT_S,
        )
        gone = watch.next()
        assert (gone.type, gone.reason) == (REMOVED, "process exited (SIGKILL)")
    finally:
        call.cancel()
        watch.close()
