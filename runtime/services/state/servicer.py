"""The state service: shared state for coordination: counters, locks, leader election (seed 3.2).

    python -m runtime.services.state    # through the agent: binds 127.0.0.1:LAB_PORT, READY port=N

Keys hold string values with a version (0: absent) in ``$LAB_DIR/state.sqlite`` (WAL; in
memory without LAB_DIR). CompareAndSwap writes only at the expected version (0: create only if
absent) and otherwise answers swapped=false with the current value. Locks (state_locks.py) have
a TTL, bounded waits and a fencing token per grant; holdings are kept in memory only, the
fencing counters are persisted. Watch(key) sends the current value, then every change, through a
bounded queue per watcher.

The store behind it is a StateBackend (runtime/services/state/backend.py): SQLite and memory by
default, an etcd cluster with ``store: etcd`` (runtime/services/state/etcd_store.py); statuses
and messages are the same on both. An etcd cluster without quorum answers UNAVAILABLE naming the
members that are down (runtime/agent/store_status.py).

Bad input answers INVALID_ARGUMENT (empty or over-long keys, values over 64 KiB, ttl_ms or
wait_ms out of range); ReleaseLock of an unknown id answers NOT_FOUND, of an expired or
released one FAILED_PRECONDITION.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc

from runtime.client.store_choice import store_from_env
from runtime.errors import quote
from runtime.identity import STATE_GRPC_SERVICE, Identity
from runtime.services.state.backend import StateBackend, make_backend
from runtime.services.state.locks import LockGone, LockProblem, UnknownLock
from runtime.services.state.store import StateProblem, check_key
from runtime.services.store_service import serve_with_store
from runtime.v1 import state_pb2, state_pb2_grpc

log = logging.getLogger("runtime.services.state")

SERVICE_NAME = "state"


class StateService(state_pb2_grpc.StateServiceServicer):
    """Get / Set / CompareAndSwap / AcquireLock / ReleaseLock / Watch over one StateBackend."""

    def __init__(self, store: StateBackend) -> None:
        self.store = store

    async def Get(  # noqa: N802 (gRPC method name)
        self, request: state_pb2.StateKey, context: grpc.aio.ServicerContext
    ) -> state_pb2.StateValue:
        """The value of a key; version 0 when it does not exist."""
        await _invalid_unless(context, check_key, request.key)
        return await self.store.get(request.key)

    async def Set(  # noqa: N802
        self, request: state_pb2.StateEntry, context: grpc.aio.ServicerContext
    ) -> state_pb2.StateAck:
        """Unconditional write; answers the new version."""
        try:
            stored = await self.store.set(request.key, request.value)
        except StateProblem as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return state_pb2.StateAck(version=stored.version)

    async def CompareAndSwap(  # noqa: N802
        self, request: state_pb2.CASRequest, context: grpc.aio.ServicerContext
    ) -> state_pb2.CASResponse:
        """Write only at expected_version (0: create only if absent); else swapped=false + current."""
        try:
            swapped, current = await self.store.compare_and_swap(
                request.key, request.expected_version, request.new_value
            )
        except StateProblem as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return state_pb2.CASResponse(swapped=swapped, current=current)

    async def AcquireLock(  # noqa: N802
        self, request: state_pb2.LockRequest, context: grpc.aio.ServicerContext
    ) -> state_pb2.LockResponse:
        """Take a lock (waiting up to wait_ms); the same owner renews its grant."""
        await _invalid_unless(context, check_key, request.name, "lock name")
        await _invalid_unless(context, check_key, request.owner, "owner")
        try:
            acquired, grant = await self.store.acquire(
                request.name, request.owner, request.ttl_ms, request.wait_ms
            )
        except LockProblem as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"lock {quote(request.name)}: {exc}")
        if grant is None:  # pragma: no cover - acquire always names a grant
            return state_pb2.LockResponse(acquired=False)
        if acquired:
            log.info("lock %s granted to %s (fencing token %d)", grant.name, grant.owner, grant.token)
            return state_pb2.LockResponse(
                acquired=True, lock_id=grant.lock_id, fencing_token=grant.token,
                holder=grant.owner, expires_at=grant.expires_at_ms,
            )  # fmt: skip
        # Not ours: say who holds it and until when, never its lock id.
        return state_pb2.LockResponse(
            acquired=False, fencing_token=grant.token, holder=grant.owner, expires_at=grant.expires_at_ms
        )

    async def ReleaseLock(  # noqa: N802
        self, request: state_pb2.LockId, context: grpc.aio.ServicerContext
    ) -> state_pb2.LockAck:
        """Release a held lock by id."""
        await _invalid_unless(context, check_key, request.lock_id, "lock_id")
        try:
            grant = await self.store.release(request.lock_id)
        except UnknownLock as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except LockGone as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        log.info("lock %s released by %s (fencing token %d)", grant.name, grant.owner, grant.token)
        return state_pb2.LockAck(released=True, message=f"lock {grant.name!r} released by {grant.owner}")

    async def Watch(  # noqa: N802
        self, request: state_pb2.StateKey, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[state_pb2.StateValue]:
        """The current value (version 0: absent), then every change of the key."""
        await _invalid_unless(context, check_key, request.key)
        changes = self.store.watch(request.key)
        try:
            async for value in changes:
                yield value
        finally:
            await changes.aclose()


async def _invalid_unless(context: grpc.aio.ServicerContext, check, value: str, what: str = "key") -> None:  # noqa: ANN001
    try:
        check(value, what)
    except StateProblem as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))


def make_store(identity: Identity) -> StateBackend:
    """The store ``LAB_STORE`` names: ``$LAB_DIR/state.sqlite`` (in memory without LAB_DIR) or etcd."""
    return make_backend(identity, store_from_env())


async def main() -> None:
    """Serve the state service through the agent until SIGTERM."""
    await serve_with_store(
        STATE_GRPC_SERVICE,
        SERVICE_NAME,
        make_store,
        lambda store, server: state_pb2_grpc.add_StateServiceServicer_to_server(StateService(store), server),
    )
