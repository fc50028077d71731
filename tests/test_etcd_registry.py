"""What only the etcd registry does: its lease lapses and it writes every registration again; a
broker that stops takes its registrations with it, and another broker's watchers are told why.
In-process brokers (real gRPC) on one real etcd member."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator

import grpc
import pytest
from etcd_cluster import Cluster, require_etcd, unique_prefix
from waiting import wait_until

from runtime.client.store_choice import StoreChoice
from runtime.services.broker.etcd_registry import BROKER_GONE, EtcdRegistry
from runtime.services.broker.servicer import BrokerServicer
from runtime.v1 import broker_pb2, broker_pb2_grpc

WAIT_S = 10.0


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreChoice]:
    require_etcd()
    cluster = Cluster(tmp_path_factory.mktemp("etcd-registry"), 1)
    cluster.start_all()
    try:
        yield cluster.choice
    finally:
        cluster.stop_all()


class Broker:
    """A BrokerServicer on an EtcdRegistry, served in this process; ``stub`` talks to it."""

    def __init__(self, aio_server, etcd: StoreChoice, prefix: str) -> None:
        def add(server) -> None:
            self.registry = EtcdRegistry(etcd, prefix=prefix)
            self.servicer = BrokerServicer(self.registry)
            broker_pb2_grpc.add_BrokerServiceServicer_to_server(self.servicer, server)
            asyncio.get_running_loop().create_task(self.servicer.expire_leases(), name="broker-lease-expiry")

        self.server = aio_server(add)
        self.server.run(self.registry.start())
        self.channel = grpc.insecure_channel(self.server.address)
        self.stub = broker_pb2_grpc.BrokerServiceStub(self.channel)
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.channel.close()
            self.server.run(self.registry.close())

    def ids(self, name: str) -> list[str]:
        request = broker_pb2.LookupServiceRequest(service_name=name, include_unhealthy=True)
        return sorted(i.instance_id for i in self.stub.LookupService(request, timeout=WAIT_S).instances)


@pytest.fixture
def brokers(aio_server, etcd: StoreChoice):
    made: list[Broker] = []
    prefix = unique_prefix()

    def make() -> Broker:
        made.append(Broker(aio_server, etcd, prefix))
        return made[-1]

    yield make
    for broker in made:
        broker.close()


def register(broker: Broker, name: str) -> None:
    inst = broker_pb2.ServiceInstance(service_name=name, instance_id=f"{name}-1", address="127.0.0.1:1")
    broker.stub.Register(broker_pb2.RegisterRequest(instance=inst, ttl_ms=600_000), timeout=WAIT_S)


def test_a_lapsed_broker_lease_is_taken_again_and_every_registration_rewritten(brokers) -> None:
    broker = brokers()
    register(broker, "kept")
    assert broker.ids("kept") == ["kept-1"]
    # The lease lapses (here: revoked behind the broker's back): etcd drops every key under it.
    broker.server.run(broker.registry.session.revoke(broker.registry._lease))
    assert broker.ids("kept") == []
    wait_until(
        lambda: broker.ids("kept") == ["kept-1"], WAIT_S, "the broker to write its registrations again"
    )


def test_a_stopped_brokers_registrations_leave_and_watchers_learn_why(brokers) -> None:
    first, second = brokers(), brokers()  # one prefix: two brokers of one etcd-backed registry
    register(first, "leaving")
    events: queue.Queue[broker_pb2.ServiceEvent] = queue.Queue()
    call = second.stub.WatchServices(broker_pb2.WatchServicesRequest(service_name="leaving"))

    def read() -> None:
        try:
            for event in call:
                events.put(event)
        except grpc.RpcError:
            pass  # cancelled at the end of the test

    reader = threading.Thread(target=read, name="test-watch", daemon=True)
    reader.start()
    try:
        assert events.get(timeout=WAIT_S).type == broker_pb2.SERVICE_EVENT_TYPE_ADDED
        assert events.get(timeout=WAIT_S).type == broker_pb2.SERVICE_EVENT_TYPE_SNAPSHOT_END
        first.close()  # revokes its lease
        gone = events.get(timeout=WAIT_S)
        assert (gone.type, gone.instance.instance_id, gone.reason) == (
            broker_pb2.SERVICE_EVENT_TYPE_REMOVED,
            "leaving-1",
            BROKER_GONE,
        )
        assert second.ids("leaving") == []
    finally:
        call.cancel()
        reader.join(timeout=WAIT_S)
