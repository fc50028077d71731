"""Who a lab process is: the environment contract between the supervisor and its children.

The supervisor gives every child these variables (any language reads them the same way):

==========================  ==========================================================
``LAB_DIR``                 the lab directory (absolute), e.g. ``/repo/.lab``
``LAB_SERVICE``             the lab service name from lab.yaml, e.g. ``calculator``
``LAB_INSTANCE``            the instance id, stable across restarts, e.g. ``calculator-1``
``LAB_BROKER_ADDR``         ``127.0.0.1:PORT`` of the broker (empty for the broker itself)
``LAB_SUPERVISOR_ADDR``     ``127.0.0.1:PORT`` of the supervisor daemon
``LAB_SUPERVISOR_PID``      the daemon's pid (children compare it with ``getppid()``)
``LAB_PORT``                port to bind; ``0`` (or unset) means any free port
``LAB_PORT_STRICT``         ``1``: binding LAB_PORT must succeed (the broker keeps its port)
``LAB_LANGUAGE``            ``python``, ``typescript``, ``rust``, ``cpp``
``PYTHONUNBUFFERED``        ``1`` for Python children
==========================  ==========================================================

A child binds 127.0.0.1, then prints exactly one line ``READY port=N`` on stdout; the supervisor
confirms it with grpc.health.v1 before the instance counts as ready.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

ENV_LAB_DIR = "LAB_DIR"
ENV_SERVICE = "LAB_SERVICE"
ENV_INSTANCE = "LAB_INSTANCE"
ENV_BROKER_ADDR = "LAB_BROKER_ADDR"
ENV_SUPERVISOR_ADDR = "LAB_SUPERVISOR_ADDR"
ENV_SUPERVISOR_PID = "LAB_SUPERVISOR_PID"
ENV_PORT = "LAB_PORT"
ENV_PORT_STRICT = "LAB_PORT_STRICT"
ENV_LANGUAGE = "LAB_LANGUAGE"

READY_PREFIX = "READY port="
LOOPBACK = "127.0.0.1"


def ready_line(port: int) -> str:
    """The one line a child prints on stdout once it serves on ``port``."""
    return f"{READY_PREFIX}{port}"


def parse_ready_line(line: str) -> int | None:
    """The port of a ``READY port=N`` line, or None for any other line."""
    text = line.strip()
    if not text.startswith(READY_PREFIX):
        return None
    try:
        port = int(text[len(READY_PREFIX) :])
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


def lab_dir_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The lab directory from ``LAB_DIR`` (created if missing), or None outside a lab."""
    path = (os.environ if env is None else env).get(ENV_LAB_DIR) or ""
    if not path:
        return None
    os.makedirs(path, exist_ok=True)
    return path


def lab_file(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """``$LAB_DIR/<name>`` for a service's SQLite file, or None (in memory) outside a lab."""
    path = lab_dir_from_env(env)
    return os.path.join(path, name) if path else None


@dataclass(frozen=True)
class Identity:
    """The lab identity of the current process, read from the environment.

    Example:
        >>> ident = Identity.from_env({"LAB_SERVICE": "calculator", "LAB_INSTANCE": "calculator-1"})
        >>> ident.instance_id
        'calculator-1'
    """

    service_name: str
    instance_id: str
    lab_dir: str = ""
    broker_address: str = ""
    supervisor_address: str = ""
    supervisor_pid: int = 0
    port: int = 0
    port_strict: bool = False
    language: str = "python"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, default_service: str = "") -> Identity:
        """Read the identity the supervisor gave; outside a lab, fall back to ``default_service``."""
        env = os.environ if env is None else env
        service = env.get(ENV_SERVICE) or default_service
        if not service:
            raise ValueError(f"{ENV_SERVICE} is not set and no default service name was given")
        return cls(
            service_name=service,
            instance_id=env.get(ENV_INSTANCE) or f"{service}-{os.getpid()}",
            lab_dir=env.get(ENV_LAB_DIR, ""),
            broker_address=env.get(ENV_BROKER_ADDR, ""),
            supervisor_address=env.get(ENV_SUPERVISOR_ADDR, ""),
            supervisor_pid=int(env.get(ENV_SUPERVISOR_PID) or 0),
            port=int(env.get(ENV_PORT) or 0),
            port_strict=env.get(ENV_PORT_STRICT) == "1",
            language=env.get(ENV_LANGUAGE, "python"),
        )
