"""Live config from the notebook: the ``lab.config`` part and the functions behind it.

The functions take a (sync) gRPC channel to the config service, so they work with or without a
``Lab``; :class:`Config` is the part ``Lab`` holds as ``lab.config``.

    lab.config.set("calculator", "max_connections", 1, "int")
    lab.config.get("calculator", "max_connections")   # namespace, key, value, value_type, version, ...
    lab.config.values("calculator")                   # the table of a namespace
    w = lab.config.watch("calculator", print)          # current values, then every change; w.stop()
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd

from runtime.identity import CONFIG_GRPC_SERVICE
from runtime.lab.connection import Connection, call, message
from runtime.lab.frames import ms_to_time
from runtime.lab.stream_watch import StreamWatch
from runtime.v1 import config_pb2, config_pb2_grpc

SERVICE = "config service"  # how error messages name it
CONFIG_COLUMNS = ["namespace", "key", "value", "value_type", "version", "updated_at"]


def _call(stub_method: Any, request: Any, what: str) -> Any:
    # NOT_FOUND here means an unset key, not an unknown service: a ClientError with its code.
    return call(stub_method, request, SERVICE, what, not_found=None)


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
    req = message(config_pb2.ConfigKey, "reading config", namespace=namespace, key=key)
    return config_dict(_call(stub.GetConfig, req, "reading config"))


def config_set(
    channel: Any, namespace: str, key: str, value: Any, value_type: str = "string", expected_version: int = 0
) -> dict[str, Any]:
    """SetConfig; returns {'ok', 'version', 'message'}. ClientError on bad input or a stale version."""
    text, vtype = encode_value(value, value_type)
    stub = config_pb2_grpc.ConfigServiceStub(channel)
    req = message(
        config_pb2.ConfigEntry, "setting config",
        namespace=namespace, key=key, value=text, value_type=vtype, expected_version=expected_version,
    )  # fmt: skip
    ack = _call(stub.SetConfig, req, "setting config")
    return {"ok": ack.ok, "version": ack.version, "message": ack.message}


def configs_frame(channel: Any, namespace: str | None = None) -> pd.DataFrame:
    """ListConfigs as a table: namespace, key, value, value_type, version, updated_at."""
    stub = config_pb2_grpc.ConfigServiceStub(channel)
    req = message(config_pb2.ConfigNamespace, "listing config", namespace=namespace or "")
    reply = _call(stub.ListConfigs, req, "listing config")
    return pd.DataFrame([config_dict(v) for v in reply.values], columns=CONFIG_COLUMNS)


def watch_config(
    channel_factory: Callable[[], Any],
    namespace: str,
    callback: Callable[[dict[str, Any]], object],
    key: str = "",
) -> StreamWatch:
    """Follow a config namespace (or one key): ``callback(config_dict)`` per value."""
    req = message(config_pb2.ConfigKey, "watching config", namespace=namespace, key=key)
    return StreamWatch(
        channel_factory,
        lambda ch: config_pb2_grpc.ConfigServiceStub(ch).WatchConfig(req),
        config_dict,
        callback,
        f"lab-config-watch-{namespace}",
    )


class Config:
    """The config part of ``Lab`` (``lab.config``): get, set, list and watch live config values.

    Example:
        >>> lab.config.set("calculator", "max_connections", 1)   # doctest: +SKIP
        {'ok': True, 'version': 3, 'message': 'calculator/max_connections is at version 3'}
    """

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def _channel(self) -> Any:
        return self._conn.channel(CONFIG_GRPC_SERVICE)

    def get(self, namespace: str, key: str) -> dict[str, Any]:
        """One config value: namespace, key, value, value_type, version, updated_at.

        Raises:
            ClientError: code ``NOT_FOUND`` when the key is not set (the message names it).

        Example:
            >>> lab.config.get("calculator", "max_connections")["value"]   # doctest: +SKIP
            '1'
        """
        return config_get(self._channel(), namespace, key)

    def set(
        self, namespace: str, key: str, value: Any, value_type: str = "string", expected_version: int = 0
    ) -> dict[str, Any]:
        """Set a config value (services following the namespace see it at once).

        ``value_type`` is string, int, bool or json (Python bools, ints, dicts pick their own).
        ``expected_version`` (non-zero) makes it conditional. Returns {'ok', 'version', 'message'}.

        Raises:
            ClientError: code ``INVALID_ARGUMENT`` (the value does not parse as its type) or
                ``FAILED_PRECONDITION`` (someone else wrote since ``expected_version``).

        Example:
            >>> lab.config.set("calculator", "max_connections", 1)   # doctest: +SKIP
            {'ok': True, 'version': 3, 'message': 'calculator/max_connections is at version 3'}
        """
        return config_set(self._channel(), namespace, key, value, value_type, expected_version)

    def values(self, namespace: str | None = None) -> pd.DataFrame:
        """Every config value (of one namespace): namespace, key, value, value_type, version, updated_at."""
        return configs_frame(self._channel(), namespace)

    def watch(
        self, namespace: str, callback: Callable[[dict[str, Any]], object], key: str = ""
    ) -> StreamWatch:
        """Call ``callback(value_dict)`` from a background thread: current values, then changes."""
        return watch_config(self._channel, namespace, callback, key)

    def __repr__(self) -> str:
        return "<lab.config: .get(), .set(), .values(), .watch()>"
