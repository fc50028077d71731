"""Config and shared state from the notebook: the ``lab.config_*`` / ``lab.state_*`` methods.

The functions take a (sync) gRPC channel to the config or state service, so they work with or
without a ``Lab``; the ``ConfigStateViews`` mixin gives ``Lab`` thin wrappers over them.

    lab.config_set("calculator", "max_connections", 1, "int")
    lab.configs("calculator")                     # namespace, key, value, value_type, version, updated_at
    w = lab.watch_config("calculator", print)     # current values, then every change; w.stop()
    lab.cas("counter", 0, "1")                    # {'swapped': True, 'value': '1', 'version': 1, ...}
    grant = lab.lock("leader", "me", ttl_ms=5000) # {'acquired': True, 'fencing_token': 7, ...}
    lab.unlock(grant["lock_id"])
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import grpc
import pandas as pd

from runtime.errors import ClientError, LabError
from runtime.lab.frames import ms_to_time
from runtime.lab.stream_watch import StreamWatch
from runtime.v1 import config_pb2, config_pb2_grpc, state_pb2, state_pb2_grpc

CONFIG_GRPC_SERVICE = "runtime.v1.ConfigService"
STATE_GRPC_SERVICE = "runtime.v1.StateService"
RPC_TIMEOUT_S = 5.0
WORKERS_TIMEOUT_S = 30.0
CONFIG_COLUMNS = ["namespace", "key", "value", "value_type", "version", "updated_at"]
TERM_COLUMNS = ["token", "owner", "start_ms", "end_ms"]
WORKER_COLUMNS = ["owner", "increments", "cas_retries", "terms", "fenced_out", "exit_code"]


def _rpc_error(err: grpc.RpcError, service: str, what: str) -> LabError:
    code = err.code()  # type: ignore[attr-defined]
    details = err.details() or str(err)  # type: ignore[attr-defined]
    if code == grpc.StatusCode.UNAVAILABLE:
        return LabError(
            f"{what}: the {service} service does not answer ({details}); is it running? see lab.status()"
        )
    return ClientError(f"{what}: {details}", code.name)


def _call(stub_method: Any, request: Any, service: str, what: str, timeout_s: float = RPC_TIMEOUT_S) -> Any:
    try:
        return stub_method(request, timeout=timeout_s)
    except grpc.RpcError as err:
        raise _rpc_error(err, service, what) from err


def config_dict(v: config_pb2.ConfigValue) -> dict[str, Any]:
    """One ConfigValue as a plain dict (updated_at as a UTC timestamp)."""
    return {
        "namespace": v.namespace, "key": v.key, "value": v.value, "value_type": v.value_type,
        "version": v.version, "updated_at": ms_to_time(v.updated_at),
    }  # fmt: skip


def encode_value(value: Any, value_type: str) -> tuple[str, str]:
    """Python value -> (text, value_type): bools, ints and dicts/lists pick their own type."""
    if isinstance(value, str):
        return value, value_type
    if isinstance(value, bool):
        return ("true" if value else "false"), ("bool" if value_type == "string" else value_type)
    if isinstance(value, int):
        return str(value), ("int" if value_type == "string" else value_type)
    return json.dumps(value), ("json" if value_type == "string" else value_type)


def config_get(channel: Any, namespace: str, key: str) -> dict[str, Any]:
    """GetConfig as a dict; ClientError (code NOT_FOUND) names namespace and key when unset."""
    stub = config_pb2_grpc.ConfigServiceStub(channel)
    req = config_pb2.ConfigKey(namespace=namespace, key=key)
    return config_dict(_call(stub.GetConfig, req, "config", "reading config"))


def config_set(
    channel: Any, namespace: str, key: str, value: Any, value_type: str = "string", expected_version: int = 0
) -> dict[str, Any]:
    """SetConfig; returns {'ok', 'version', 'message'}. ClientError on bad input or a stale version."""
    text, vtype = encode_value(value, value_type)
    stub = config_pb2_grpc.ConfigServiceStub(channel)
    req = config_pb2.ConfigEntry(
        namespace=namespace, key=key, value=text, value_type=vtype, expected_version=expected_version
    )
    ack = _call(stub.SetConfig, req, "config", "setting config")
    return {"ok": ack.ok, "version": ack.version, "message": ack.message}


def configs_frame(channel: Any, namespace: str | None = None) -> pd.DataFrame:
    """ListConfigs as a table: namespace, key, value, value_type, version, updated_at."""
    stub = config_pb2_grpc.ConfigServiceStub(channel)
    reply = _call(
        stub.ListConfigs, config_pb2.ConfigNamespace(namespace=namespace or ""), "config", "listing config"
    )
    return pd.DataFrame([config_dict(v) for v in reply.values], columns=CONFIG_COLUMNS)


def state_dict(v: state_pb2.StateValue) -> dict[str, Any]:
    """One StateValue as a dict (version 0: the key does not exist)."""
    return {"key": v.key, "value": v.value, "version": v.version, "updated_at": ms_to_time(v.updated_at)}


def state_get(channel: Any, key: str) -> dict[str, Any]:
    """Get: {'key', 'value', 'version', 'updated_at'}; version 0 when absent."""
    stub = state_pb2_grpc.StateServiceStub(channel)
    return state_dict(_call(stub.Get, state_pb2.StateKey(key=key), "state", f"reading state {key!r}"))


def state_set(channel: Any, key: str, value: str) -> int:
    """Set; returns the new version."""
    stub = state_pb2_grpc.StateServiceStub(channel)
    ack = _call(stub.Set, state_pb2.StateEntry(key=key, value=str(value)), "state", f"setting state {key!r}")
    return int(ack.version)


def cas(channel: Any, key: str, expected_version: int, value: str) -> dict[str, Any]:
    """CompareAndSwap: {'swapped', 'key', 'value', 'version', 'updated_at'} (the value now stored)."""
    stub = state_pb2_grpc.StateServiceStub(channel)
    req = state_pb2.CASRequest(key=key, expected_version=expected_version, new_value=str(value))
    reply = _call(stub.CompareAndSwap, req, "state", f"compare-and-swap of {key!r}")
    return {"swapped": reply.swapped, **state_dict(reply.current)}


def lock(channel: Any, name: str, owner: str, ttl_ms: int = 10_000, wait_ms: int = 0) -> dict[str, Any]:
    """AcquireLock: {'acquired', 'lock_id', 'fencing_token', 'holder', 'expires_at'}."""
    stub = state_pb2_grpc.StateServiceStub(channel)
    req = state_pb2.LockRequest(name=name, owner=owner, ttl_ms=ttl_ms, wait_ms=wait_ms)
    r = _call(stub.AcquireLock, req, "state", f"acquiring lock {name!r}", RPC_TIMEOUT_S + wait_ms / 1000)
    return {
        "acquired": r.acquired, "lock_id": r.lock_id, "fencing_token": r.fencing_token,
        "holder": r.holder, "expires_at": ms_to_time(r.expires_at),
    }  # fmt: skip


def unlock(channel: Any, lock_id: str) -> dict[str, Any]:
    """ReleaseLock: {'released', 'message'}; ClientError NOT_FOUND / FAILED_PRECONDITION otherwise."""
    stub = state_pb2_grpc.StateServiceStub(channel)
    ack = _call(stub.ReleaseLock, state_pb2.LockId(lock_id=lock_id), "state", "releasing a lock")
    return {"released": ack.released, "message": ack.message}


def watch_config(
    channel_factory: Callable[[], Any],
    namespace: str,
    callback: Callable[[dict[str, Any]], object],
    key: str = "",
) -> StreamWatch:
    """Follow a config namespace (or one key): ``callback(config_dict)`` per value."""
    req = config_pb2.ConfigKey(namespace=namespace, key=key)
    return StreamWatch(
        channel_factory,
        lambda ch: config_pb2_grpc.ConfigServiceStub(ch).WatchConfig(req),
        config_dict,
        callback,
        f"lab-config-watch-{namespace}",
    )


def watch_state(
    channel_factory: Callable[[], Any], key: str, callback: Callable[[dict[str, Any]], object]
) -> StreamWatch:
    """Follow one state key: ``callback(state_dict)`` per value (version 0: absent)."""
    req = state_pb2.StateKey(key=key)
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
        LAB_DIR=str(lab_dir), LAB_BROKER_ADDR=broker_address, LAB_SERVICE="worker", PYTHONUNBUFFERED="1"
    )
    procs = []
    for i in range(1, n + 1):
        argv = [sys.executable, "-m", "runtime.services.state.worker", "--increments", str(increments),
                "--terms", str(terms), "--counter", counter, "--lock", lock_name]  # fmt: skip
        child_env = {**env, "LAB_INSTANCE": f"worker-{i}"}
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


class ConfigStateViews:
    """The config and state part of ``Lab``: relies on ``self._channel(grpc_service)`` and ``self.lab_dir``."""

    lab_dir: Any  # provided by Lab, as is broker_address (a read-only property there)

    def _channel(self, grpc_service: str) -> Any:  # provided by Lab
        raise NotImplementedError

    def config_get(self, namespace: str, key: str) -> dict[str, Any]:
        """One config value: namespace, key, value, value_type, version, updated_at.

        Example:
            >>> lab.config_get("calculator", "max_connections")["value"]   # doctest: +SKIP
            '1'
        """
        return config_get(self._channel(CONFIG_GRPC_SERVICE), namespace, key)

    def config_set(
        self, namespace: str, key: str, value: Any, value_type: str = "string", expected_version: int = 0
    ) -> dict[str, Any]:
        """Set a config value (services following the namespace see it at once).

        ``value_type`` is string, int, bool or json (Python bools, ints, dicts pick their own).
        ``expected_version`` (non-zero) makes it conditional. Returns {'ok', 'version', 'message'}.

        Example:
            >>> lab.config_set("calculator", "max_connections", 1)   # doctest: +SKIP
            {'ok': True, 'version': 3, 'message': 'calculator/max_connections is at version 3'}
        """
        return config_set(
            self._channel(CONFIG_GRPC_SERVICE), namespace, key, value, value_type, expected_version
        )

    def configs(self, namespace: str | None = None) -> pd.DataFrame:
        """Every config value (of one namespace): namespace, key, value, value_type, version, updated_at."""
        return configs_frame(self._channel(CONFIG_GRPC_SERVICE), namespace)

    def watch_config(
        self, namespace: str, callback: Callable[[dict[str, Any]], object], key: str = ""
    ) -> StreamWatch:
        """Call ``callback(value_dict)`` from a background thread: current values, then changes."""
        return watch_config(lambda: self._channel(CONFIG_GRPC_SERVICE), namespace, callback, key)

    def state_get(self, key: str) -> dict[str, Any]:
        """A state value: key, value, version (0: absent), updated_at."""
        return state_get(self._channel(STATE_GRPC_SERVICE), key)

    def state_set(self, key: str, value: str) -> int:
        """Write a state value unconditionally; returns its new version."""
        return state_set(self._channel(STATE_GRPC_SERVICE), key, value)

    def cas(self, key: str, expected_version: int, value: str) -> dict[str, Any]:
        """Compare-and-swap (expected_version 0: create only if absent); returns swapped + the stored value.

        Example:
            >>> lab.cas("counter", 0, "1")["swapped"]   # doctest: +SKIP
            True
        """
        return cas(self._channel(STATE_GRPC_SERVICE), key, expected_version, value)

    def lock(self, name: str, owner: str, ttl_ms: int = 10_000, wait_ms: int = 0) -> dict[str, Any]:
        """Acquire a lock for ``owner`` (the same owner renews); the grant carries a fencing_token."""
        return lock(self._channel(STATE_GRPC_SERVICE), name, owner, ttl_ms, wait_ms)

    def unlock(self, lock_id: str) -> dict[str, Any]:
        """Release a lock by the lock_id of its grant."""
        return unlock(self._channel(STATE_GRPC_SERVICE), lock_id)

    def watch_state(self, key: str, callback: Callable[[dict[str, Any]], object]) -> StreamWatch:
        """Call ``callback(value_dict)`` from a background thread: the current value, then changes."""
        return watch_state(lambda: self._channel(STATE_GRPC_SERVICE), key, callback)

    def run_workers(self, n: int = 3, **kwargs: Any) -> dict[str, pd.DataFrame]:
        """Run ``n`` worker processes (CAS counter + leader lock) side by side; see ``run_workers``."""
        return run_workers(self.broker_address, self.lab_dir, n, **kwargs)  # type: ignore[attr-defined]
