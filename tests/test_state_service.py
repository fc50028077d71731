"""The state service: versions, CAS, locks with TTL and fencing, watch (in-process, on the local store and
on etcd); persistence (a real process)."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from etcd_cluster import store_backend, unique_prefix  # noqa: F401 (fixture)
from service_process import start_service
from waiting import wait_until

from runtime.services.state.backend import LocalState
from runtime.services.state.etcd_store import EtcdState
from runtime.services.state.servicer import StateService
from runtime.services.state.store import StateStore
from runtime.v1 import state_pb2, state_pb2_grpc

RPC_S = 5.0


class InProcessState:
    """The state servicer served in this process (the SIGKILL test below runs the real process),
    on the local store (in memory) or on the module's etcd member (keys under a fresh prefix)."""

    def __init__(self, aio_server, backend: str, etcd=None) -> None:
        self.backend = backend

        def add(server) -> None:
            store = LocalState(StateStore(None)) if etcd is None else EtcdState(etcd, prefix=unique_prefix())
            self.service = StateService(store)
            state_pb2_grpc.add_StateServiceServicer_to_server(self.service, server)

        self.server = aio_server(add)
        self.address = self.server.address

    def close(self) -> None:
        self.server.run(self.service.store.close())


@pytest.fixture
def state(store_backend, aio_server):  # noqa: F811 (the imported fixture)
    proc = InProcessState(aio_server, store_backend.name, store_backend.choice)
    yield proc
    proc.close()


def increasing_tokens(state, *tokens: int) -> bool:
    """Fencing tokens grow with each grant: 1, 2, 3 locally; etcd revisions (larger steps) on etcd."""
    if state.backend == "local":
        return list(tokens) == list(range(1, len(tokens) + 1))
    return all(a < b for a, b in zip(tokens, tokens[1:], strict=False)) and tokens[0] > 0


def stub_of(proc) -> tuple[grpc.Channel, state_pb2_grpc.StateServiceStub]:
    channel = grpc.insecure_channel(proc.address)
    return channel, state_pb2_grpc.StateServiceStub(channel)


def status_of(call, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=RPC_S)
    return info.value.code(), info.value.details()


def lock(stub, name="leader", owner="a", ttl_ms=1000, wait_ms=0):
    req = state_pb2.LockRequest(name=name, owner=owner, ttl_ms=ttl_ms, wait_ms=wait_ms)
    return stub.AcquireLock(req, timeout=RPC_S + wait_ms / 1000)


def test_get_set_and_cas(state):
    channel, stub = stub_of(state)
    with channel:
        assert stub.Get(state_pb2.StateKey(key="k"), timeout=RPC_S).version == 0
        assert stub.Set(state_pb2.StateEntry(key="k", value="a"), timeout=RPC_S).version == 1
        assert stub.Set(state_pb2.StateEntry(key="k", value="b"), timeout=RPC_S).version == 2
        create = stub.CompareAndSwap(
            state_pb2.CASRequest(key="k", expected_version=0, new_value="x"), timeout=RPC_S
        )
        assert not create.swapped and (create.current.value, create.current.version) == ("b", 2)
        ok = stub.CompareAndSwap(
            state_pb2.CASRequest(key="k", expected_version=2, new_value="c"), timeout=RPC_S
        )
        assert ok.swapped and (ok.current.value, ok.current.version) == ("c", 3)
        new = stub.CompareAndSwap(
            state_pb2.CASRequest(key="n", expected_version=0, new_value="1"), timeout=RPC_S
        )
        assert new.swapped and new.current.version == 1


@pytest.mark.parametrize(
    ("method", "request_", "words"),
    [
        ("Get", state_pb2.StateKey(key=""), "key is empty"),
        ("Set", state_pb2.StateEntry(key="k" * 257, value="v"), "at most 256"),
        ("Set", state_pb2.StateEntry(key="k", value="v" * 70_000), "bytes"),
        ("CompareAndSwap", state_pb2.CASRequest(key="k", expected_version=-1), "expected_version"),
        ("AcquireLock", state_pb2.LockRequest(name="", owner="a"), "lock name is empty"),
        ("AcquireLock", state_pb2.LockRequest(name="l", owner=""), "owner is empty"),
        ("AcquireLock", state_pb2.LockRequest(name="l", owner="a", ttl_ms=600_000), "ttl_ms"),
        ("AcquireLock", state_pb2.LockRequest(name="l", owner="a", wait_ms=-1), "wait_ms"),
        ("ReleaseLock", state_pb2.LockId(lock_id=""), "lock_id is empty"),
    ],
)
def test_bad_input_is_invalid_argument(state, method, request_, words):
    channel, stub = stub_of(state)
    with channel:
        code, details = status_of(getattr(stub, method), request_)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and words in details, details


def test_cas_counter_under_concurrency_is_exact(state):
    threads, per_thread = 8, 25

    def bump(_: int) -> int:
        retries = 0
        channel, stub = stub_of(state)
        with channel:
            for _ in range(per_thread):
                while True:
                    cur = stub.Get(state_pb2.StateKey(key="counter"), timeout=RPC_S)
                    nxt = str(int(cur.value or "0") + 1)
                    req = state_pb2.CASRequest(key="counter", expected_version=cur.version, new_value=nxt)
                    if stub.CompareAndSwap(req, timeout=RPC_S).swapped:
                        break
                    retries += 1
        return retries

    with ThreadPoolExecutor(threads) as pool:
        retries = sum(pool.map(bump, range(threads)))
    channel, stub = stub_of(state)
    with channel:
        final = stub.Get(state_pb2.StateKey(key="counter"), timeout=RPC_S)
    assert final.value == str(threads * per_thread) and final.version == threads * per_thread
    assert retries >= 0  # contention is likely, never required


def test_locks_fencing_renewal_wait_and_ttl_expiry(state):
    channel, stub = stub_of(state)
    with channel:
        a = lock(stub, owner="a", ttl_ms=300)
        assert a.acquired and a.fencing_token > 0 and a.holder == "a"
        b = lock(stub, owner="b")
        assert not b.acquired and b.holder == "a" and not b.lock_id
        renewed = lock(stub, owner="a", ttl_ms=300)
        assert renewed.acquired and renewed.lock_id == a.lock_id and renewed.fencing_token == a.fencing_token
        # b waits; a's grant expires (no renewal) and b gets the next token.
        t0 = time.monotonic()
        b = lock(stub, owner="b", ttl_ms=5000, wait_ms=3000)
        waited = time.monotonic() - t0
        assert b.acquired and increasing_tokens(state, a.fencing_token, b.fencing_token), (a, b)
        # b waited for a's grant to expire, not for its own deadline. On etcd the grant is an etcd
        # lease, which etcd keeps for at least its minimum TTL (1.5 s with the default heartbeat) and
        # revokes on its own schedule, so the hand-over comes later there.
        assert 0.1 < waited < (2.0 if state.backend == "local" else 5.0), (b, waited)
        code, details = status_of(stub.ReleaseLock, state_pb2.LockId(lock_id=a.lock_id))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "expired" in details, details
        code, details = status_of(stub.ReleaseLock, state_pb2.LockId(lock_id="no-such-id"))
        assert code == grpc.StatusCode.NOT_FOUND and "no-such-id" in details, details
        # A waiter is woken by a release at once.
        got: list[state_pb2.LockResponse] = []
        waiter = threading.Thread(target=lambda: got.append(lock(stub, owner="c", wait_ms=3000)))
        waiter.start()
        time.sleep(0.1)  # lets c block in AcquireLock first (c also gets the lock if it comes late)
        t0 = time.monotonic()
        assert stub.ReleaseLock(state_pb2.LockId(lock_id=b.lock_id), timeout=RPC_S).released
        waiter.join(5)
        assert got and got[0].acquired and got[0].holder == "c"
        assert increasing_tokens(state, a.fencing_token, b.fencing_token, got[0].fencing_token)
        assert time.monotonic() - t0 < 0.5
        code, details = status_of(stub.ReleaseLock, state_pb2.LockId(lock_id=b.lock_id))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "released" in details, details


def test_watch_sends_current_value_then_changes(state):
    channel, stub = stub_of(state)
    with channel:
        stub.Set(state_pb2.StateEntry(key="w", value="0"), timeout=RPC_S)
        call = stub.Watch(state_pb2.StateKey(key="w"), timeout=10)
        seen: list[tuple[str, int]] = []
        done = threading.Event()

        def read():
            for v in call:
                seen.append((v.value, v.version))
                if len(seen) == 3:
                    done.set()
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        # The first value comes after the watch is registered (local: subscribed first; etcd: the
        # watch starts at the revision after the read), so nothing set from now on is missed.
        wait_until(lambda: len(seen) >= 1, 5, "the watch's current value")
        stub.Set(state_pb2.StateEntry(key="other", value="x"), timeout=RPC_S)
        stub.Set(state_pb2.StateEntry(key="w", value="1"), timeout=RPC_S)
        stub.CompareAndSwap(state_pb2.CASRequest(key="w", expected_version=2, new_value="2"), timeout=RPC_S)
        assert done.wait(5), seen
        call.cancel()
        reader.join(2)
    assert seen == [("0", 1), ("1", 2), ("2", 3)]


def test_values_and_fencing_tokens_survive_sigkill_but_locks_do_not(lab_dir: Path):
    first = start_service("runtime.services.state", lab_dir, service="state", instance="state-1")
    try:
        channel, stub = stub_of(first)
        with channel:
            stub.Set(state_pb2.StateEntry(key="k", value="kept"), timeout=RPC_S)
            held = lock(stub, owner="a", ttl_ms=30_000)
            assert held.fencing_token == 1
        first.signal(signal.SIGKILL)
        first.wait()
    finally:
        first.stop()
    second = start_service("runtime.services.state", lab_dir, service="state", instance="state-1")
    try:
        channel, stub = stub_of(second)
        with channel:
            got = stub.Get(state_pb2.StateKey(key="k"), timeout=RPC_S)
            assert (got.value, got.version) == ("kept", 1)
            code, _ = status_of(stub.ReleaseLock, state_pb2.LockId(lock_id=held.lock_id))
            assert code == grpc.StatusCode.NOT_FOUND  # holdings are in memory only
            again = lock(stub, owner="b")
            assert again.acquired and again.fencing_token == 2  # the counter was persisted
    finally:
        second.stop()
