"""Shared state from the notebook: the ``lab.state`` part (values, CAS, locks, worker processes).

The functions take a (sync) gRPC channel to the state service, so they work with or without a
``Lab``; :class:`State` is the part ``Lab`` holds as ``lab.state``.

    lab.state.cas("counter", 0, "1")                     # {'swapped': True, 'value': '1', 'version': 1, ...}
    grant = lab.state.lock("leader", "me", ttl_ms=5000)  # {'acquired': True, 'fencing_token': 7, ...}
    lab.state.unlock(grant["lock_id"])
    lab.state.run_workers(3)                             # worker processes: CAS counter + leader lock
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pandas as pd

from runtime.identity import (
    ENV_BROKER_ADDR,
    ENV_INSTANCE,
    ENV_LAB_DIR,
    ENV_PYTHONUNBUFFERED,
    ENV_SERVICE,
    STATE_GRPC_SERVICE,
)
from runtime.lab.connection import RPC_TIMEOUT_S, Connection, call, message
from runtime.lab.frames import ms_to_time
from runtime.lab.stream_watch import StreamWatch
from runtime.v1 import state_pb2, state_pb2_grpc

SERVICE = "state service"  # how error messages name it
WORKERS_TIMEOUT_S = 30.0
TERM_COLUMNS = ["token", "owner", "start_ms", "end_ms"]
WORKER_COLUMNS = ["owner", "increments", "cas_retries", "terms", "fenced_out", "exit_code"]


def _call(stub_method: Any, request: Any, what: str, timeout_s: float = RPC_TIMEOUT_S) -> Any:
    # NOT_FOUND here means an unknown lock, not an unknown service: a ClientError with its code.
    return call(stub_method, request, SERVICE, what, timeout_s=timeout_s, not_found=None)


def state_dict(v: state_pb2.StateValue) -> dict[str, Any]:
    """One StateValue as a dict (version 0: the key does not exist)."""
    return {"key": v.key, "value": v.value, "version": v.version, "updated_at": ms_to_time(v.updated_at)}


def state_get(channel: Any, key: str) -> dict[str, Any]:
    """Get: {'key', 'value', 'version', 'updated_at'}; version 0 when absent."""
    stub = state_pb2_grpc.StateServiceStub(channel)
    what = f"reading state {key!r}"
    return state_dict(_call(stub.Get, message(state_pb2.StateKey, what, key=key), what))


def state_set(channel: Any, key: str, value: str) -> int:
    """Set; returns the new version."""
    stub = state_pb2_grpc.StateServiceStub(channel)
    what = f"setting state {key!r}"
    ack = _call(stub.Set, message(state_pb2.StateEntry, what, key=key, value=str(value)), what)
    return int(ack.version)


def cas(channel: Any, key: str, expected_version: int, value: str) -> dict[str, Any]:
    """CompareAndSwap: {'swapped', 'key', 'value', 'version', 'updated_at'} (the value now stored)."""
    stub = state_pb2_grpc.StateServiceStub(channel)
    what = f"compare-and-swap of {key!r}"
    req = message(
        state_pb2.CASRequest, what, key=key, expected_version=expected_version, new_value=str(value)
    )
    reply = _call(stub.CompareAndSwap, req, what)
    return {"swapped": reply.swapped, **state_dict(reply.current)}


def lock(channel: Any, name: str, owner: str, ttl_ms: int = 10_000, wait_ms: int = 0) -> dict[str, Any]:
    """AcquireLock: {'acquired', 'lock_id', 'fencing_token', 'holder', 'expires_at'}."""
    stub = state_pb2_grpc.StateServiceStub(channel)
    what = f"acquiring lock {name!r}"
    req = message(state_pb2.LockRequest, what, name=name, owner=owner, ttl_ms=ttl_ms, wait_ms=wait_ms)
    r = _call(stub.AcquireLock, req, what, RPC_TIMEOUT_S + req.wait_ms / 1000)
    return {
        "acquired": r.acquired, "lock_id": r.lock_id, "fencing_token": r.fencing_token,
        "holder": r.holder, "expires_at": ms_to_time(r.expires_at),
    }  # fmt: skip


def unlock(channel: Any, lock_id: str) -> dict[str, Any]:
    """ReleaseLock: {'released', 'message'}; ClientError NOT_FOUND / FAILED_PRECONDITION otherwise."""
    stub = state_pb2_grpc.StateServiceStub(channel)
    req = message(state_pb2.LockId, "releasing a lock", lock_id=lock_id)
    ack = _call(stub.ReleaseLock, req, "releasing a lock")
    return {"released": ack.released, "message": ack.message}


def watch_state(
    channel_factory: Callable[[], Any], key: str, callback: Callable[[dict[str, Any]], object]
) -> StreamWatch:
    """Follow one state key: ``callback(state_dict)`` per value (version 0: absent)."""
    req = message(state_pb2.StateKey, "watching state", key=key)
    return StreamWatch(
        channel_factory,
        lambda ch: state_pb2_grpc.StateServiceStub(ch).Watch(req),
        state_dict,
        callback,
        f"lab-state-watch-{key}",
    )


def run_workers(
    broker_address: str,
    lab_dir: str | os.PathLike[str],
    n: int = 3,
    *,
    increments: int = 20,
    terms: int = 2,
    counter: str = "worker/counter",
    lock_name: str = "leader",
    timeout_s: float = WORKERS_TIMEOUT_S,
) -> dict[str, pd.DataFrame]:
    """Run ``n`` worker processes side by side (``python -m runtime.services.state.worker``) and wait.

    Each adds ``increments`` to ``counter`` with CAS and becomes leader of ``lock_name`` ``terms``
    times. A worker still running after ``timeout_s`` is killed (by pid).

    Returns:
        {'workers': owner, increments, cas_retries, terms, fenced_out, exit_code;
         'terms': token, owner, start_ms, end_ms (sorted by token)}
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update(
        {
            ENV_LAB_DIR: str(lab_dir),
            ENV_BROKER_ADDR: broker_address,
            ENV_SERVICE: "worker",
            ENV_PYTHONUNBUFFERED: "1",
        }
    )
    procs = []
    for i in range(1, n + 1):
        argv = [sys.executable, "-m", "runtime.services.state.worker", "--increments", str(increments),
                "--terms", str(terms), "--counter", counter, "--lock", lock_name]  # fmt: skip
        child_env = {**env, ENV_INSTANCE: f"worker-{i}"}
        procs.append(
            subprocess.Popen(argv, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    workers, all_terms = [], []
    for i, proc in enumerate(procs, 1):
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()  # by pid: our own child
            out, err = proc.communicate()
        report = _last_json(out)
        if report is None:
            workers.append(
                {"owner": f"worker-{i}", "exit_code": proc.returncode, "error": err.strip()[-500:]}
            )
            continue
        all_terms += [{**t, "owner": report["owner"]} for t in report["terms"]]
        workers.append({**report, "terms": len(report["terms"]), "exit_code": proc.returncode})
    terms_df = pd.DataFrame(all_terms, columns=TERM_COLUMNS).sort_values("token", ignore_index=True)
    return {"workers": pd.DataFrame(workers), "terms": terms_df}


def _last_json(out: str) -> dict[str, Any] | None:
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


class State:
    """The shared-state part of ``Lab`` (``lab.state``): values, compare-and-swap, locks, workers.

    Example:
        >>> lab.state.cas("counter", 0, "1")["swapped"]   # doctest: +SKIP
        True
    """

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def _channel(self) -> Any:
        return self._conn.channel(STATE_GRPC_SERVICE)

    def get(self, key: str) -> dict[str, Any]:
        """A state value: key, value, version (0: absent), updated_at."""
        return state_get(self._channel(), key)

    def set(self, key: str, value: str) -> int:
        """Write a state value unconditionally; returns its new version."""
        return state_set(self._channel(), key, value)

    def cas(self, key: str, expected_version: int, value: str) -> dict[str, Any]:
        """Compare-and-swap (expected_version 0: create only if absent); returns swapped + the stored value.

        Example:
            >>> lab.state.cas("counter", 0, "1")["swapped"]   # doctest: +SKIP
            True
        """
        return cas(self._channel(), key, expected_version, value)

    def lock(self, name: str, owner: str, ttl_ms: int = 10_000, wait_ms: int = 0) -> dict[str, Any]:
        """Acquire a lock for ``owner`` (the same owner renews); the grant carries a fencing_token."""
        return lock(self._channel(), name, owner, ttl_ms, wait_ms)

    def unlock(self, lock_id: str) -> dict[str, Any]:
        """Release a lock by the lock_id of its grant.

        Raises:
            ClientError: code ``NOT_FOUND`` (no such lock any more) or ``FAILED_PRECONDITION``.
        """
        return unlock(self._channel(), lock_id)

    def watch(self, key: str, callback: Callable[[dict[str, Any]], object]) -> StreamWatch:
        """Call ``callback(value_dict)`` from a background thread: the current value, then changes."""
        return watch_state(self._channel, key, callback)

    def run_workers(self, n: int = 3, **kwargs: Any) -> dict[str, pd.DataFrame]:
        """Run ``n`` worker processes (CAS counter + leader lock) side by side; see ``run_workers``."""
        return run_workers(self._conn.broker_address(), self._conn.lab_dir, n, **kwargs)

    def __repr__(self) -> str:
        return "<lab.state: .get(), .set(), .cas(), .lock(), .unlock(), .watch(), .run_workers()>"
