"""A worker that coordinates through the state service: CAS counter, leader lock, fencing.

    python -m runtime.services.state.worker --increments 50 --terms 2   # one-shot (a lab job)
    python -m runtime.services.state.worker --serve                     # long-running (a lab service)

One-shot: adds ``--increments`` to the counter key with Get + CompareAndSwap (retrying on a
lost race, so the total is exact however many workers run), and ``--terms`` times becomes
leader: AcquireLock("leader") with a fencing token, one *fenced write*, hold, ReleaseLock. It
prints one JSON line: owner, increments, cas_retries, and each term (token, start_ms, end_ms).

Service (``--serve``): through the agent (READY, health, logs); competes for the leader lock for
as long as it runs, renews it while leading (same owner = renewal), and as leader makes one
fenced write per ``--tick-ms``. A worker that stalls past its TTL loses the lock; its next fenced
write sees a newer token and it steps down.

Fenced write: the key ``<lock>/fenced`` holds ``{"token": T, "owner": ..., "writes": n}``; a
writer whose token is older than the stored one is refused (that is what fencing tokens are for).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field

import grpc

from runtime.identity import ENV_BROKER_ADDR, ENV_INSTANCE, EXIT_OK, EXIT_USAGE, STATE_GRPC_SERVICE, Identity
from runtime.v1 import state_pb2, state_pb2_grpc

log = logging.getLogger("runtime.services.state.worker")

RPC_TIMEOUT_S = 5.0
DEFAULT_COUNTER = "worker/counter"
DEFAULT_LOCK = "leader"
LEADER_TTL_MS = 2000
LEADER_WAIT_MS = 5000


class FencedOut(Exception):
    """A newer leader (higher fencing token) has written: this worker must step down."""


@dataclass
class Report:
    """What one worker did (printed as JSON by the one-shot mode)."""

    owner: str
    increments: int = 0
    cas_retries: int = 0
    terms: list[dict[str, int]] = field(default_factory=list)
    fenced_out: int = 0


def increment(stub: state_pb2_grpc.StateServiceStub, key: str) -> int:
    """Add 1 to the integer at ``key`` with Get + CAS; returns how many races were lost."""
    lost = 0
    while True:
        cur = stub.Get(state_pb2.StateKey(key=key), timeout=RPC_TIMEOUT_S)
        nxt = str(int(cur.value or "0") + 1)
        req = state_pb2.CASRequest(key=key, expected_version=cur.version, new_value=nxt)
        if stub.CompareAndSwap(req, timeout=RPC_TIMEOUT_S).swapped:
            return lost
        lost += 1


def fenced_write(
    stub: state_pb2_grpc.StateServiceStub, lock: str, token: int, owner: str
) -> dict[str, object]:
    """Write ``<lock>/fenced`` only if no newer token has written; returns the stored record.

    Raises:
        FencedOut: a leader with a higher token wrote first.
    """
    key = f"{lock}/fenced"
    while True:
        cur = stub.Get(state_pb2.StateKey(key=key), timeout=RPC_TIMEOUT_S)
        record = json.loads(cur.value) if cur.value else {"token": 0, "writes": 0}
        if record["token"] > token:
            raise FencedOut(f"{owner}: token {token} is older than {record['token']} ({record.get('owner')})")
        record = {"token": token, "owner": owner, "writes": int(record["writes"]) + 1}
        req = state_pb2.CASRequest(key=key, expected_version=cur.version, new_value=json.dumps(record))
        if stub.CompareAndSwap(req, timeout=RPC_TIMEOUT_S).swapped:
            return record


def acquire(stub, lock: str, owner: str, ttl_ms: int = LEADER_TTL_MS, wait_ms: int = LEADER_WAIT_MS):  # noqa: ANN001, ANN201
    """AcquireLock; the response (acquired, lock_id, fencing_token, holder, expires_at)."""
    req = state_pb2.LockRequest(name=lock, owner=owner, ttl_ms=ttl_ms, wait_ms=wait_ms)
    return stub.AcquireLock(req, timeout=RPC_TIMEOUT_S + wait_ms / 1000)


def run_once(
    stub: state_pb2_grpc.StateServiceStub,
    owner: str,
    *,
    increments: int,
    terms: int,
    counter: str = DEFAULT_COUNTER,
    lock: str = DEFAULT_LOCK,
    hold_ms: int = 20,
) -> Report:
    """The one-shot mode: ``increments`` CAS increments interleaved with ``terms`` leader terms."""
    report = Report(owner)
    rounds = max(terms, 1)
    for r in range(rounds):
        share = increments // rounds + (1 if r < increments % rounds else 0)
        for _ in range(share):
            report.cas_retries += increment(stub, counter)
            report.increments += 1
        if r >= terms:
            continue
        grant = acquire(stub, lock, owner)
        if not grant.acquired:
            log.warning("%s: %s held by %s for too long; skipping this term", owner, lock, grant.holder)
            continue
        start = time.time_ns() // 1_000_000
        try:
            fenced_write(stub, lock, grant.fencing_token, owner)
            time.sleep(hold_ms / 1000)
        except FencedOut:
            report.fenced_out += 1
        end = time.time_ns() // 1_000_000
        stub.ReleaseLock(state_pb2.LockId(lock_id=grant.lock_id), timeout=RPC_TIMEOUT_S)
        report.terms.append({"token": grant.fencing_token, "start_ms": start, "end_ms": end})
    return report


def lead_forever(stub, owner: str, lock: str, stop: threading.Event, tick_ms: int = 500) -> None:  # noqa: ANN001
    """The service mode: compete for ``lock``; while leading renew it and write fenced ticks."""
    token = 0
    lock_id = ""
    while not stop.is_set():
        try:
            grant = acquire(stub, lock, owner, wait_ms=min(LEADER_TTL_MS, 1000))
            if not grant.acquired:
                if token:
                    log.info(
                        "%s lost leadership (now %s, token %d)", owner, grant.holder, grant.fencing_token
                    )
                token, lock_id = 0, ""
                continue
            if grant.fencing_token != token:
                token, lock_id = grant.fencing_token, grant.lock_id
                log.info("%s is the leader of %r with fencing token %d", owner, lock, token)
            fenced_write(stub, lock, token, owner)
        except FencedOut as exc:
            log.warning("stepping down: %s", exc)
            token = 0
        except grpc.RpcError as exc:
            log.info("state service: %s; retrying", exc.code().name)  # type: ignore[attr-defined]
        stop.wait(tick_ms / 1000)
    if lock_id:
        try:
            stub.ReleaseLock(state_pb2.LockId(lock_id=lock_id), timeout=RPC_TIMEOUT_S)
        except grpc.RpcError:
            pass  # expired or the state service is gone: nothing to give back


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m runtime.services.state.worker", description=__doc__.split("\n")[0])
    p.add_argument("--serve", action="store_true", help="run as a lab service (READY, health) until SIGTERM")
    p.add_argument("--owner", default="", help=f"lock owner name (default: '${ENV_INSTANCE} pid <pid>')")
    p.add_argument("--increments", type=int, default=10, help="CAS increments of the counter (one-shot)")
    p.add_argument("--terms", type=int, default=1, help="how often to become leader (one-shot)")
    p.add_argument("--counter", default=DEFAULT_COUNTER, help="state key of the counter")
    p.add_argument("--lock", default=DEFAULT_LOCK, help="lock name")
    p.add_argument("--hold-ms", type=int, default=20, help="how long a one-shot leader term lasts")
    p.add_argument("--tick-ms", type=int, default=500, help="fenced-write period of a serving leader")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace, owner: str, identity: Identity) -> None:
    """Service mode: the agent serves health; a thread competes for leadership."""
    from runtime.agent import Agent
    from runtime.client import connect

    agent = Agent([], default_service="worker", identity=identity)
    await agent.start()
    stop = threading.Event()
    channel = connect(STATE_GRPC_SERVICE, identity.broker_address)
    stub = state_pb2_grpc.StateServiceStub(channel)
    leader = asyncio.create_task(asyncio.to_thread(lead_forever, stub, owner, args.lock, stop, args.tick_ms))
    try:
        await agent.wait_for_stop()
    finally:
        stop.set()
        await leader
        channel.close()
        await agent.stop()


def main(argv: list[str] | None = None) -> int:
    """Run one worker; returns the exit code."""
    args = parse_args(argv)
    identity = Identity.from_env(default_service="worker")  # the one read of the environment
    # The pid makes a restarted instance a new owner: it must win the lock again, with a new token.
    owner = args.owner or f"{identity.instance_id} pid {os.getpid()}"
    if args.serve:
        asyncio.run(serve(args, owner, identity))
        return EXIT_OK
    from runtime.client import connect

    if not identity.broker_address:
        print(f"worker: {ENV_BROKER_ADDR} is not set; run me from the lab (a job) or set it", file=sys.stderr)
        return EXIT_USAGE
    channel = connect(STATE_GRPC_SERVICE, identity.broker_address)
    try:
        stub = state_pb2_grpc.StateServiceStub(channel)
        report = run_once(
            stub, owner, increments=args.increments, terms=args.terms,
            counter=args.counter, lock=args.lock, hold_ms=args.hold_ms,
        )  # fmt: skip
    finally:
        channel.close()
    print(json.dumps(report.__dict__), flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
