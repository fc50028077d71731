"""One etcd session for the lab's stores: aetcd underneath, clear errors on top.

Which store a service uses, and the StoreUnavailable message naming down members, live in
runtime/client/store_choice.py (re-exported here).

Client library: **aetcd** (PyPI, asyncio etcd v3 client over grpcio; maintained, 1.0.0 from
2026-06). Its generated protos (protobuf gencode 5.27) load under the protobuf 7.x and grpcio 1.85
this project pins (checked with warnings as errors) and register files named ``rpc.proto``,
``kv.proto`` and ``auth.proto``, which clash with nothing of ours. So no etcd ``.proto`` is copied
here and no second HTTP stack is needed; the JSON grpc-gateway with httpx was the fallback.
aetcd talks to one gRPC target; several endpoints become one ``ipv4:a,b,c`` target with gRPC's
``round_robin`` policy, so a dead member is skipped by the channel itself.

Errors: when the cluster cannot answer (a member is down and the rest have no quorum, or nothing
listens), every call raises :class:`StoreUnavailable`, whose message names the members that do not
answer and what to do. Servers turn it into gRPC UNAVAILABLE (runtime/agent/store_status.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
import aetcd.rpc

from runtime.client.store_choice import (
    STORE_ETCD,
    STORE_LOCAL,
    StoreChoice,
    StoreUnavailable,
    cluster_path,
    down_members,
    outage_message,
    parse_store,
    read_cluster,
    store_from_env,
)

__all__ = [
    "STORE_ETCD",
    "STORE_LOCAL",
    "EtcdSession",
    "RevisionCompacted",
    "StoreChoice",
    "StoreUnavailable",
    "cluster_path",
    "delete_op",
    "down_members",
    "get_op",
    "mod_is",
    "outage_message",
    "parse_store",
    "prefix_end",
    "put_op",
    "read_cluster",
    "store_from_env",
    "txn_request",
]

T = TypeVar("T")

REQUEST_TIMEOUT_S = 2.0  # etcd answers in ms; without quorum it would wait its own 7 s first
WATCH_RETRY_S = 0.2  # a watch whose member died is made again on another member after this
# A member that just died refuses calls until the channel has moved to the others: on a busy
# machine that took longer than two retries 0.1 s apart ("connections to all backends failing" with
# 2 of 3 members up, in a CI run of chapter 10), so up to 1 s.
CONNECT_RETRIES = 10
CONNECT_RETRY_S = 0.1
# What etcd says when it cannot reach a quorum in time (any status code).
OUTAGE_WORDS = ("timed out", "deadline exceeded", "no leader", "leader changed", "not leader")
# A timeout (or a connection failure that says so) while a quorum listens: an election, or the
# channel not yet moved off a member that just died; tried again up to this often.
TIMEOUT_RETRIES = 3
DEFAULT_PREFIX = "/runtime-lab/"


class RevisionCompacted(LookupError):
    """A watch asked for a revision etcd has compacted away."""

    def __init__(self, revision: int, compacted: int) -> None:
        self.revision = revision
        self.compacted = compacted
        super().__init__(f"revision {revision} was compacted (etcd keeps from {compacted})")


def _target(endpoints: tuple[str, ...]) -> tuple[str, int]:
    """aetcd's (host, port) spelling one gRPC target over every endpoint (``ipv4:a,b,c``)."""
    if len(endpoints) == 1:
        host, _, port = endpoints[0].rpartition(":")
        return host, int(port)
    head, _, port = endpoints[-1].rpartition(":")
    return "ipv4:" + ",".join([*endpoints[:-1], head]), int(port)


class EtcdSession:
    """One aetcd client over a cluster, with every failure turned into StoreUnavailable.

    Example:
        >>> session = EtcdSession(parse_store("etcd:127.0.0.1:2379"))   # doctest: +SKIP
        >>> await session.call(lambda c: c.put(b"k", b"v"))             # doctest: +SKIP
    """

    def __init__(self, choice: StoreChoice, prefix: str = DEFAULT_PREFIX) -> None:
        self.choice = choice
        self.prefix = prefix.encode()
        host, port = _target(choice.endpoints)
        self.client = aetcd.Client(
            host=host,
            port=port,
            timeout=REQUEST_TIMEOUT_S,
            options={
                "grpc.lb_policy_name": "round_robin",
                # A member that comes back is used again within a second.
                "grpc.initial_reconnect_backoff_ms": 200,
                "grpc.max_reconnect_backoff_ms": 1000,
            },
        )

    def key(self, *parts: str) -> bytes:
        """``<prefix><part>/<part>...`` as bytes."""
        return self.prefix + "/".join(parts).encode()

    async def call(self, op: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        """Run ``op(client)``; what says "the cluster cannot answer" becomes StoreUnavailable.

        Two kinds of failure are tried again before they count as an outage: a call refused by a
        member that just died (UNAVAILABLE before the channel skips it; ``CONNECT_RETRIES``
        times), and a call that timed out while a quorum still listens (a leader election after
        the leader died; ``TIMEOUT_RETRIES`` times). Only then is the outage named (``outage_message``).
        """
        refused, timed_out = 0, 0
        while True:
            try:
                return await op(self.client)
            except Exception as exc:  # noqa: BLE001 - sorted below; anything else is re-raised
                kind = _failure_kind(exc)
                if kind == "":
                    raise
                if kind == "refused" and refused < CONNECT_RETRIES:
                    refused += 1
                    await asyncio.sleep(CONNECT_RETRY_S)
                    continue
                detail = _detail(exc)
                if kind == "timeout" and timed_out < TIMEOUT_RETRIES:
                    down = await asyncio.to_thread(down_members, self.choice)
                    if len(down) < len(self.choice.endpoints) - len(self.choice.endpoints) // 2:
                        timed_out += 1  # a quorum listens: an election, or the channel moving on
                        await asyncio.sleep(CONNECT_RETRY_S)
                        continue
                message = await asyncio.to_thread(outage_message, self.choice, detail)
                raise StoreUnavailable(message) from None

    async def txn(self, request: aetcd.rpc.TxnRequest) -> Any:
        """A raw etcd Txn (compare on mod_revision and friends); returns the TxnResponse."""

        async def run(c: aetcd.Client) -> Any:
            await c.connect()
            return await c.kvstub.Txn(request, timeout=REQUEST_TIMEOUT_S, metadata=c.metadata)

        return await self._raw(run)

    async def range(self, key: bytes, range_end: bytes | None = None) -> tuple[int, list[Any]]:
        """(store revision, the key-values of ``[key, range_end)``) in one linearizable read."""

        async def run(c: aetcd.Client) -> Any:
            await c.connect()
            request = aetcd.rpc.RangeRequest(key=key, range_end=range_end or b"")
            return await c.kvstub.Range(request, timeout=REQUEST_TIMEOUT_S, metadata=c.metadata)

        reply = await self._raw(run)
        return reply.header.revision, list(reply.kvs)

    async def grant(self, ttl_s: int) -> int:
        """A new etcd lease of ``ttl_s`` seconds (etcd may round a short one up); its id."""
        lease = await self.call(lambda c: c.lease(ttl_s))
        return int(lease.id)

    async def revoke(self, lease_id: int) -> None:
        """Revoke a lease (its keys go at once); a lease already gone is fine."""
        with contextlib.suppress(aetcd.exceptions.ClientError):
            await self.call(lambda c: c.revoke_lease(lease_id))

    async def refresh(self, lease_id: int) -> bool:
        """One keepalive of ``lease_id``; False when etcd no longer knows it."""
        reply = await self.call(lambda c: c.refresh_lease(lease_id))
        return reply is not None and reply.TTL > 0

    async def _raw(self, run: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        """A call straight on aetcd's stubs (gRPC errors unmapped by aetcd): the same rules."""
        return await self.call(run)

    async def watch(
        self, key: bytes, range_end: bytes | None, start_revision: int, *, prev_kv: bool = False
    ) -> AsyncGenerator[Any, None]:
        """Events of ``[key, range_end)`` from ``start_revision`` on, across member failures.

        A stream broken by a dead member is made again from the revision after the last event seen,
        so no event is lost or doubled. Raises RevisionCompacted when the start is compacted.
        """
        next_rev = start_revision
        while True:
            try:
                watch = await self.call(self._watch_op(key, range_end, next_rev, prev_kv))
            except aetcd.exceptions.RevisionCompactedError as exc:
                raise RevisionCompacted(next_rev, exc.compacted_revision) from None
            except StoreUnavailable:
                await asyncio.sleep(WATCH_RETRY_S)
                continue
            try:
                async for event in watch:
                    next_rev = event.kv.mod_revision + 1
                    yield event
            except aetcd.exceptions.RevisionCompactedError as exc:
                raise RevisionCompacted(next_rev, exc.compacted_revision) from None
            except aetcd.exceptions.ClientError:
                await asyncio.sleep(WATCH_RETRY_S)  # its member died: again, on another one
            finally:
                with contextlib.suppress(Exception):
                    await watch.cancel()

    @staticmethod
    def _watch_op(
        key: bytes, range_end: bytes | None, start: int, prev_kv: bool
    ) -> Callable[[aetcd.Client], Awaitable[Any]]:
        async def op(c: aetcd.Client) -> Any:
            return await c.watch(key, range_end=range_end, start_revision=start, prev_kv=prev_kv)

        return op

    async def close(self) -> None:
        """Close the channel (and every watch on it)."""
        with contextlib.suppress(Exception):
            await self.client.close()


def txn_request(
    compare: list[aetcd.rpc.Compare], success: list[aetcd.rpc.RequestOp], failure: list[aetcd.rpc.RequestOp]
) -> aetcd.rpc.TxnRequest:
    """A TxnRequest (kept here so the stores never spell aetcd's module layout)."""
    return aetcd.rpc.TxnRequest(compare=compare, success=success, failure=failure)


def mod_is(key: bytes, revision: int) -> aetcd.rpc.Compare:
    """Compare: ``key``'s mod_revision is ``revision`` (0: the key does not exist)."""
    return aetcd.rpc.Compare(
        key=key,
        result=aetcd.rpc.Compare.CompareResult.EQUAL,
        target=aetcd.rpc.Compare.CompareTarget.MOD,
        mod_revision=revision,
    )


def put_op(key: bytes, value: bytes, lease: int = 0) -> aetcd.rpc.RequestOp:
    """A put inside a transaction."""
    return aetcd.rpc.RequestOp(request_put=aetcd.rpc.PutRequest(key=key, value=value, lease=lease))


def get_op(key: bytes) -> aetcd.rpc.RequestOp:
    """A read inside a transaction."""
    return aetcd.rpc.RequestOp(request_range=aetcd.rpc.RangeRequest(key=key))


def delete_op(key: bytes) -> aetcd.rpc.RequestOp:
    """A delete inside a transaction."""
    return aetcd.rpc.RequestOp(request_delete_range=aetcd.rpc.DeleteRangeRequest(key=key))


def _failure_kind(exc: BaseException) -> str:
    """ "refused", "timeout" or "" (not a cluster failure) for an exception from a call."""
    if isinstance(exc, aetcd.exceptions.ConnectionFailedError):
        return "refused"
    if isinstance(exc, aetcd.exceptions.ConnectionTimeoutError | aetcd.exceptions.WatchTimeoutError):
        return "timeout"
    if isinstance(exc, aetcd.rpc.AioRpcError):
        code, text = exc.code(), exc.details() or ""
        if code == aetcd.rpc.StatusCode.UNAVAILABLE:
            return "timeout" if any(words in text for words in OUTAGE_WORDS) else "refused"
        if code == aetcd.rpc.StatusCode.DEADLINE_EXCEEDED or any(words in text for words in OUTAGE_WORDS):
            return "timeout"  # etcd says "context deadline exceeded" as UNKNOWN when its own wait ends
        return ""
    if isinstance(exc, aetcd.exceptions.ClientError) and not isinstance(
        exc, aetcd.exceptions.RevisionCompactedError
    ):
        if isinstance(exc, aetcd.exceptions.InternalError) or any(
            words in str(exc) for words in OUTAGE_WORDS
        ):
            return "timeout"
    return ""


def _detail(exc: BaseException) -> str:
    if isinstance(exc, aetcd.rpc.AioRpcError):
        return exc.details() or exc.code().name
    return str(exc) or type(exc).__name__


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with ``prefix`` (etcd's "prefix + 1")."""
    return prefix[:-1] + bytes([prefix[-1] + 1])
