"""The production twin in a real lab: three etcd members, the broker, config and state on them.

One member down: quorum holds, lookups and writes go on, nothing registered or written is lost.
Two down: writes fail with UNAVAILABLE naming the members that are down. Both back: everything
written before is still there, and writes work again. Plus worker processes electing one leader
at a time on etcd leases, and the fencing rule: a stale token is refused. Every process is real (tests/labs/etcd-cluster.yaml).
"""

from __future__ import annotations

import json
import queue
import threading

import grpc
import pytest
from etcd_cluster import require_etcd
from waiting import wait_until

from runtime.client import auth
from runtime.services.state.worker import FencedOut, fenced_write
from runtime.v1 import broker_pb2, broker_pb2_grpc, config_pb2, config_pb2_grpc, state_pb2, state_pb2_grpc

RPC_S = 8.0  # longer than the store's own 2 s deadline plus naming the down members
LAB_UP_S = 90.0
RECOVER_S = 30.0
TTL_MS = 600_000  # the test's registrations need no keepalive


class Twin:
    """Stubs on the lab's broker, config and state services (with the lab's token)."""

    def __init__(self, lab) -> None:
        self.lab = lab
        self.channels: list[grpc.Channel] = []
        self.broker = broker_pb2_grpc.BrokerServiceStub(self._channel(lab.broker_address))
        self.config = config_pb2_grpc.ConfigServiceStub(self._channel(self.address_of("config")))
        self.state = state_pb2_grpc.StateServiceStub(self._channel(self.address_of("state")))

    def _channel(self, address: str) -> grpc.Channel:
        channel = auth.insecure_channel(address, token=self.lab.token)
        self.channels.append(channel)
        return channel

    def address_of(self, service: str) -> str:
        found = self.broker.LookupService(
            broker_pb2.LookupServiceRequest(service_name=service), timeout=RPC_S
        )
        assert found.instances, f"no {service} instance registered"
        return found.instances[0].address

    def register(self, n: int) -> None:
        inst = broker_pb2.ServiceInstance(
            service_name="twin", instance_id=f"twin-{n}", address=f"127.0.0.1:{41000 + n}",
            grpc_services=["twin.v1.TwinService"], language="python",
        )  # fmt: skip
        self.broker.Register(broker_pb2.RegisterRequest(instance=inst, ttl_ms=TTL_MS), timeout=RPC_S)

    def registered(self) -> list[str]:
        # include_unhealthy: nothing serves at these addresses, so the health service soon marks
        # them UNHEALTHY (hidden from plain lookups); the registrations themselves are the point.
        request = broker_pb2.LookupServiceRequest(service_name="twin", include_unhealthy=True)
        found = self.broker.LookupService(request, timeout=RPC_S)
        return sorted(i.instance_id for i in found.instances)

    def write(self, n: int) -> None:
        """One write of each kind: a state value and a config value."""
        self.state.Set(state_pb2.StateEntry(key=f"k{n}", value=f"v{n}"), timeout=RPC_S)
        entry = config_pb2.ConfigEntry(namespace="twin", key=f"c{n}", value=str(n), value_type="int")
        self.config.SetConfig(entry, timeout=RPC_S)

    def written(self, n: int) -> bool:
        got = self.state.Get(state_pb2.StateKey(key=f"k{n}"), timeout=RPC_S)
        conf = self.config.GetConfig(config_pb2.ConfigKey(namespace="twin", key=f"c{n}"), timeout=RPC_S)
        return got.value == f"v{n}" and conf.value == str(n)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


class Follow:
    """A WatchServices stream for service ``twin``, read by a thread: which instances were ADDED."""

    def __init__(self, twin: Twin) -> None:
        self.call = twin.broker.WatchServices(broker_pb2.WatchServicesRequest(service_name="twin"))
        self.added: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="twin-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.call:
                if event.type == broker_pb2.SERVICE_EVENT_TYPE_ADDED:
                    self.added.put(event.instance.instance_id)
        except grpc.RpcError:
            pass

    def next_added(self, timeout_s: float = RPC_S) -> str:
        return self.added.get(timeout=timeout_s)

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(timeout=RPC_S)


def member_running(lab, name: str) -> bool:
    status = lab.status()
    row = status[status["instance"] == name]
    return bool(len(row)) and row.iloc[0]["state"] == "RUNNING"


def test_one_member_down_keeps_working_two_down_fail_clearly_and_both_come_back(lab_factory) -> None:
    require_etcd()
    lab = lab_factory("etcd-cluster", timeout_s=LAB_UP_S)
    twin = Twin(lab)
    follow = Follow(twin)
    try:
        twin.register(1)
        twin.write(1)
        assert follow.next_added() == "twin-1"

        # One member down: a quorum (2 of 3) is left.
        lab.kill("etcd", "etcd-2")
        wait_until(lambda: not member_running(lab, "etcd-2"), 10, "etcd-2 to be down")
        assert twin.registered() == ["twin-1"]  # lookups work, nothing lost
        twin.register(2)
        twin.write(2)  # writes work
        assert twin.registered() == ["twin-1", "twin-2"] and twin.written(1) and twin.written(2)
        assert follow.next_added() == "twin-2"  # the broker's etcd watch goes on (re-made if need be)

        # Two members down: no quorum. Writes fail, and say which members are down.
        lab.kill("etcd", "etcd-3")
        wait_until(lambda: not member_running(lab, "etcd-3"), 10, "etcd-3 to be down")
        for attempt in (lambda: twin.write(3), lambda: twin.register(3)):
            with pytest.raises(grpc.RpcError) as info:
                attempt()
            details = info.value.details()
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, details
            assert "2 of 3 members are down" in details and "etcd-2" in details and "etcd-3" in details
            assert "etcd-1" not in details.split("(", 1)[1].split(")", 1)[0], details  # etcd-1 is up

        # Both back: the cluster recovers, and everything written before is still there.
        lab.start("etcd", "etcd-2")
        lab.start("etcd", "etcd-3")

        def writable() -> bool:
            try:
                twin.write(4)
                return True
            except grpc.RpcError:
                return False

        wait_until(writable, RECOVER_S, "writes to work again after the members return")
        assert twin.written(1) and twin.written(2) and twin.written(4)
        # twin-3's Register answered UNAVAILABLE (not yet in etcd), but the broker keeps its
        # changes queued in order and wrote it once the quorum was back: an agent that retries
        # finds itself registered (runtime/services/broker/etcd_registry.py).
        wait_until(lambda: twin.registered() == ["twin-1", "twin-2", "twin-3"], 10, "the queued registration")
        assert follow.next_added(RECOVER_S) == "twin-3"  # the same watch stream, across the outage
    finally:
        follow.close()
        twin.close()


def test_workers_lead_one_at_a_time_and_a_stale_fencing_token_is_refused_on_etcd(lab_factory) -> None:
    """Four worker processes count with CAS and take turns as leader: locks on etcd leases, one
    leader at a time, tokens (etcd revisions) unique and growing. Then leader a's grant lapses,
    b takes the lock (a larger token) and writes; a's late write with its old token is refused
    (runtime/services/state/worker.py fenced_write)."""
    require_etcd()
    lab = lab_factory("etcd-cluster", timeout_s=LAB_UP_S)
    run = lab.state.run_workers(4, increments=10, terms=2, counter="etcd/counter", lock_name="etcd-leader")
    workers, terms = run["workers"], run["terms"]
    assert list(workers.exit_code) == [0] * 4, workers
    assert lab.state.get("etcd/counter")["value"] == "40"
    assert len(terms) == 8 and terms.token.is_unique and terms.token.is_monotonic_increasing, terms
    assert (terms.end_ms.shift(1).fillna(0) <= terms.start_ms).all(), terms  # one leader at a time
    twin = Twin(lab)
    try:
        a = twin.state.AcquireLock(state_pb2.LockRequest(name="leader", owner="a", ttl_ms=300), timeout=RPC_S)
        assert a.acquired
        wait = state_pb2.LockRequest(name="leader", owner="b", ttl_ms=5000, wait_ms=3000)
        b = twin.state.AcquireLock(wait, timeout=RPC_S + 3)
        assert b.acquired and b.fencing_token > a.fencing_token, (a, b)
        assert fenced_write(twin.state, "leader", b.fencing_token, "b")["token"] == b.fencing_token
        with pytest.raises(FencedOut) as info:
            fenced_write(twin.state, "leader", a.fencing_token, "a")
        assert f"token {a.fencing_token} is older than {b.fencing_token}" in str(info.value)
        stored = json.loads(twin.state.Get(state_pb2.StateKey(key="leader/fenced"), timeout=RPC_S).value)
        assert stored["owner"] == "b"
    finally:
        twin.close()
