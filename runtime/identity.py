"""The cross-process contract of a lab, in one place: the environment, the files in the lab
directory, the exit codes, the READY line and the gRPC service names.

Every process reads its environment once, at start, into one settings dataclass (tables below);
no other module spells a ``LAB_*`` variable, a lab-dir file name or an exit code another process
reads. Any language reads these the same way.

The supervisor gives every child these variables (``Identity.from_env`` reads them):

==========================  ==========================================================
``LAB_DIR``                 the lab directory (absolute), e.g. ``/repo/.lab``
``LAB_SERVICE``             the lab service name from lab.yaml, e.g. ``calculator``
``LAB_INSTANCE``            the instance id, stable across restarts, e.g. ``calculator-1``
``LAB_BROKER_ADDR``         ``127.0.0.1:PORT`` of the broker (empty for the broker itself)
``LAB_SUPERVISOR_ADDR``     ``127.0.0.1:PORT`` of the supervisor daemon
``LAB_SUPERVISOR_PID``      the daemon's pid
``LAB_PARENT_PID``          the pid the child's parent-death signal is tied to, which children
                            compare with ``getppid()``: the daemon's fork server for a forked
                            Python service, else unset (then the daemon's pid)
``LAB_PORT``                port to bind; ``0`` (or unset) means any free port
``LAB_PORT_STRICT``         ``1``: binding LAB_PORT must succeed (the broker keeps its port)
``LAB_LANGUAGE``            ``python``, ``typescript``, ``rust``, ``cpp``
``LAB_STORE``               broker/config/state store: ``local``, ``etcd`` or ``etcd:HOST:PORT,...``
                            (lab.yaml ``store:``; read by runtime/client/etcd.py)
``PYTHONUNBUFFERED``        ``1`` for Python children
``LAB_NICE``                lab.yaml's ``nice`` when set: the child already runs that much nicer
                            (the supervisor applies it; the child only sees it)
==========================  ==========================================================

A child binds 127.0.0.1, then prints exactly one line ``READY port=N`` on stdout; the supervisor
confirms it with grpc.health.v1 before the instance counts as ready.

Tuning, each read once at start by the settings of the one process kind that uses it:

=================================  ===========================================================
``LAB_HEALTH_<SETTING>``           health service, ``HealthSettings`` (e.g.
                                   ``LAB_HEALTH_PROBE_INTERVAL_S=0.2``)
``LAB_HEALTH_DEGRADED_P99_MS``     every agent, ``AgentSettings``: the DEGRADED rule's p99
``LAB_HEALTH_DEGRADED_IN_FLIGHT``  ... its in-flight limit
``LAB_HEALTH_RECOVER_HOLD_S``      ... how long calm must hold before HEALTHY again
``LAB_LOAD_MAX_<LIMIT>``           load generator, ``LoadSettings``: ``RPS``, ``DURATION_S``,
                                   ``CONCURRENCY``, ``ACTIVE_TESTS``, ``TIMEOUT_MS``
``LAB_LOG_RING``                   logger, ``LoggerSettings``: entries in the ring
``LAB_LOG_RETENTION``              ... entries kept in logs.sqlite
``LAB_PROJECT_ROOT``               Lab API and CLI: the folder holding lab.yaml
``LAB_LEASE_TTL_MS``               Lab API: how fast a dead kernel's lease lapses
``LAB_REQUIRE_POLYGLOT``           ``calculator.toolchains``: ``1`` makes a missing toolchain fail
``LAB_FORKSERVER``                 supervisor daemon: ``0`` execs every service instead of
                                   forking ``python -m`` ones from its fork server
``LAB_EVENT_LOOP``                 Python services (``runtime.services.main.run``): ``uvloop``
                                   (default) or ``asyncio`` (the standard library's loop)
=================================  ===========================================================

Files in the lab directory:

=====================  ======================================================================
``supervisor.lock``    the daemon's exclusive lock (holds its pid): one daemon per lab dir
``supervisor.json``    the daemon's pid and address, written atomically; gone after a clean stop
``supervisor.log``     the daemon's own stdout and stderr
``logs.sqlite``        the logger's store (WAL)
``config.sqlite``      the config service's store (WAL)
``state.sqlite``       the state service's store (WAL)
``etcd-cluster.json``  the lab's etcd members: names and loopback ports (lab.etcd.yaml)
``etcd/<member>/``     an etcd member's data directory
=====================  ======================================================================

Exit codes another process acts on:

=======  ====================  ==============================================================
``0``    ``EXIT_OK``           done, or stopped cleanly
``1``    ``EXIT_FAILED``       a client or job tried and failed (its last ERROR line says why)
``2``    ``EXIT_USAGE``        bad arguments or a bad lab.yaml: nothing was tried
``3``    ``EXIT_LOCKED``       another supervisor already runs for this lab dir: attach to it
``124``  ``EXIT_TIMEOUT``      a job killed after its timeout (as coreutils ``timeout`` reports)
``130``  ``EXIT_INTERRUPTED``  a service stopped by Ctrl-C (128 + SIGINT, as a shell reports)
=======  ====================  ==============================================================

gRPC service names (what agents register and callers look up) come from the generated
descriptors, never typed twice: ``BROKER_GRPC_SERVICE`` is ``runtime.v1.BrokerService``, and so
on for ``HEALTH``, ``LOGGER``, ``LOADGEN``, ``CHAOS``, ``CONFIG``, ``STATE`` and ``SUPERVISOR``.

Access (only the lab's owner drives the lab):

==========================  ==========================================================
``LAB_TOKEN``               the lab's secret; every RPC sends ``authorization: Bearer <it>``
``<LAB_DIR>/token``         the same secret on disk (mode 0600, the dir 0700) for callers
                            outside the lab (notebook, CLI, grpcurl)
``LAB_CORRELATION_ID``      a job's correlation id: the one key a RunJob caller may set
==========================  ==========================================================

grpc.health.v1 and server reflection answer without the token; every other RPC without it (or with
another) is UNAUTHENTICATED. The rule is ``token_refusal`` below, decided alike by every server;
runtime/client/auth.py sends the token and installs the check in gRPC servers.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from google.protobuf.descriptor import FileDescriptor

from runtime.v1 import (
    broker_pb2,
    chaos_pb2,
    config_pb2,
    health_pb2,
    load_pb2,
    logger_pb2,
    state_pb2,
    supervisor_pb2,
)

# Owner only: the daemon sets this umask before anything else, and every process of the lab
# (forked or exec'd) inherits it, so no other local user can read the logs, stores or token.
LAB_UMASK = 0o077

ENV_LAB_DIR = "LAB_DIR"
ENV_SERVICE = "LAB_SERVICE"
ENV_INSTANCE = "LAB_INSTANCE"
ENV_BROKER_ADDR = "LAB_BROKER_ADDR"
ENV_SUPERVISOR_ADDR = "LAB_SUPERVISOR_ADDR"
ENV_SUPERVISOR_PID = "LAB_SUPERVISOR_PID"
ENV_PARENT_PID = "LAB_PARENT_PID"
ENV_PORT = "LAB_PORT"
ENV_PORT_STRICT = "LAB_PORT_STRICT"
ENV_LANGUAGE = "LAB_LANGUAGE"
ENV_PYTHONUNBUFFERED = "PYTHONUNBUFFERED"
ENV_NICE = "LAB_NICE"  # lab.yaml's nice: the spawner lowers the child's CPU priority by this much
ENV_STORE = "LAB_STORE"  # the broker/config/state store (runtime/client/etcd.py reads it)

# -- tuning, one process kind each (see the tuning table above) --
ENV_HEALTH_PREFIX = "LAB_HEALTH_"  # + a HealthSettings field name, upper case
ENV_DEGRADED_P99_MS = "LAB_HEALTH_DEGRADED_P99_MS"
ENV_DEGRADED_IN_FLIGHT = "LAB_HEALTH_DEGRADED_IN_FLIGHT"
ENV_RECOVER_HOLD_S = "LAB_HEALTH_RECOVER_HOLD_S"
ENV_LOAD_MAX_RPS = "LAB_LOAD_MAX_RPS"
ENV_LOAD_MAX_DURATION_S = "LAB_LOAD_MAX_DURATION_S"
ENV_LOAD_MAX_CONCURRENCY = "LAB_LOAD_MAX_CONCURRENCY"
ENV_LOAD_MAX_ACTIVE_TESTS = "LAB_LOAD_MAX_ACTIVE_TESTS"
ENV_LOAD_MAX_TIMEOUT_MS = "LAB_LOAD_MAX_TIMEOUT_MS"
ENV_LOG_RING = "LAB_LOG_RING"
ENV_LOG_RETENTION = "LAB_LOG_RETENTION"
ENV_PROJECT_ROOT = "LAB_PROJECT_ROOT"
ENV_LEASE_TTL_MS = "LAB_LEASE_TTL_MS"
ENV_REQUIRE_POLYGLOT = "LAB_REQUIRE_POLYGLOT"
ENV_CPROFILE_DIR = "LAB_CPROFILE_DIR"  # benchmarks: every agent writes a cProfile of its loop there
ENV_FORKSERVER = "LAB_FORKSERVER"  # the daemon: "0" execs every service (runtime/supervisor/forked.py)
ENV_EVENT_LOOP = "LAB_EVENT_LOOP"  # Python services: uvloop (default) or asyncio (runtime/services/main.py)

# -- access: the per-lab secret (see "Access" in the module docstring) --
ENV_TOKEN = "LAB_TOKEN"
TOKEN_FILE = "token"
AUTH_HEADER = "authorization"  # gRPC metadata keys are lower case
AUTH_SCHEME = "Bearer"
# The only variable a RunJob caller may set (runtime/supervisor/jobs.py JOB_ENV_ALLOWLIST): the
# job's correlation id; everything else a job gets comes from lab.yaml and this table.
ENV_CORRELATION_ID = "LAB_CORRELATION_ID"

READY_PREFIX = "READY port="
READY_HTTP_KEY = "http="  # optional second field: the Connect (HTTP/1.1) port
HTTP_METADATA_KEY = "http"  # broker metadata: "127.0.0.1:PORT" of an instance's Connect port
WEB_SERVICE = "web"  # the lab service that serves the web page; its origins may call over CORS
LOOPBACK = "127.0.0.1"

# -- files in the lab directory (see the files table above) --
LOCK_FILE = "supervisor.lock"
INFO_FILE = "supervisor.json"
SUPERVISOR_LOG_FILE = "supervisor.log"
LOGS_DB_FILE = "logs.sqlite"
CONFIG_DB_FILE = "config.sqlite"
STATE_DB_FILE = "state.sqlite"
ETCD_CLUSTER_FILE = "etcd-cluster.json"
ETCD_DATA_DIR = "etcd"

# -- exit codes (see the exit code table above) --
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130


def _grpc_service(file: FileDescriptor, name: str) -> str:
    """The full name of service ``name`` in a generated file, e.g. ``runtime.v1.BrokerService``."""
    return file.services_by_name[name].full_name


# -- gRPC service names, from the generated descriptors --
BROKER_GRPC_SERVICE = _grpc_service(broker_pb2.DESCRIPTOR, "BrokerService")
HEALTH_GRPC_SERVICE = _grpc_service(health_pb2.DESCRIPTOR, "HealthService")
LOGGER_GRPC_SERVICE = _grpc_service(logger_pb2.DESCRIPTOR, "LoggerService")
LOADGEN_GRPC_SERVICE = _grpc_service(load_pb2.DESCRIPTOR, "LoadGeneratorService")
CHAOS_GRPC_SERVICE = _grpc_service(chaos_pb2.DESCRIPTOR, "ChaosService")
CONFIG_GRPC_SERVICE = _grpc_service(config_pb2.DESCRIPTOR, "ConfigService")
STATE_GRPC_SERVICE = _grpc_service(state_pb2.DESCRIPTOR, "StateService")
SUPERVISOR_GRPC_SERVICE = _grpc_service(supervisor_pb2.DESCRIPTOR, "SupervisorService")


def ready_line(port: int, http_port: int = 0) -> str:
    """The one line a child prints on stdout once it serves on ``port`` (and HTTP on ``http_port``).

    >>> ready_line(50051), ready_line(50051, 8080)
    ('READY port=50051', 'READY port=50051 http=8080')
    """
    return f"{READY_PREFIX}{port}" + (f" {READY_HTTP_KEY}{http_port}" if http_port else "")


def _ready_fields(line: str) -> dict[str, int] | None:
    text = line.strip()
    if not text.startswith(READY_PREFIX):
        return None
    fields: dict[str, int] = {}
    for token in text[len("READY ") :].split():
        key, _, value = token.partition("=")
        try:
            fields[key] = int(value)
        except ValueError:
            return None
    return fields


def _valid_port(port: int | None) -> int | None:
    return port if port is not None and 0 < port < 65536 else None


def parse_ready_line(line: str) -> int | None:
    """The port of a ``READY port=N`` line (``http=M`` may follow), or None for any other line."""
    fields = _ready_fields(line)
    return None if fields is None else _valid_port(fields.get("port"))


def parse_ready_http(line: str) -> int | None:
    """The HTTP (Connect) port of a ``READY port=N http=M`` line, or None when it names none."""
    fields = _ready_fields(line)
    return None if fields is None else _valid_port(fields.get(READY_HTTP_KEY.rstrip("=")))


# -- access: the rule every server applies (gRPC interceptors, Connect), decided alike everywhere --

# Methods anyone may call: probes (grpc_health_probe, the supervisor's readiness check) and
# `grpcurl list` need no secret, and neither changes anything.
OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


def presented_token(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header; "" for another scheme, None if absent."""
    prefix = AUTH_SCHEME.lower() + " "
    for key, value in metadata or ():
        if key.lower() != AUTH_HEADER:
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        return text[len(prefix) :].strip() if text[: len(prefix)].lower() == prefix else ""
    return None


def token_refusal(
    method: str, metadata: Iterable[tuple[str, str | bytes]], token: str, lab_dir: str = ""
) -> str | None:
    """Why a call to ``method`` is refused (the UNAUTHENTICATED message), or None if it may go on.

    No ``token`` (a server outside a lab) refuses nothing. The message says where the token lives,
    so a learner with grpcurl knows what to send; another user learns only that it is not theirs.

    Example:
        >>> token_refusal("/runtime.v1.BrokerService/ListServices", [("authorization", "Bearer s3")], "s3")
        >>> token_refusal("/grpc.health.v1.Health/Check", [], "s3")
        >>> token_refusal("/runtime.v1.BrokerService/ListServices", [], "s3", "/p/.lab")[:60]
        "this lab requires its token: send 'authorization: Bearer <to"
    """
    if not token or method.startswith(OPEN_METHOD_PREFIXES):
        return None
    presented = presented_token(metadata)
    # Constant time: how much of a guess matches must not show in how long the answer takes.
    if presented and hmac.compare_digest(presented.encode("utf-8", "replace"), token.encode("utf-8")):
        return None
    where = (
        f"the token is in {os.path.join(lab_dir, TOKEN_FILE)}, readable only by the lab's owner"
        if lab_dir
        else f"the lab's processes have it in ${ENV_TOKEN}"
    )
    send = f"send '{AUTH_HEADER}: {AUTH_SCHEME} <token>'"
    if not presented:
        return f"this lab requires its token: {send} ({where})"
    return (
        f"the token sent does not match this lab's token: {send} ({where}; a restarted lab has a new token)"
    )


def lab_dir_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The lab directory from ``LAB_DIR`` (created if missing), or None outside a lab."""
    path = (os.environ if env is None else env).get(ENV_LAB_DIR) or ""
    if not path:
        return None
    os.makedirs(path, exist_ok=True)
    return path


def broker_address_from_env(env: Mapping[str, str] | None = None) -> str:
    """``LAB_BROKER_ADDR``, or ``""`` outside a lab: the default of every client's broker address."""
    return (os.environ if env is None else env).get(ENV_BROKER_ADDR, "")


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
    parent_pid: int = 0  # LAB_PARENT_PID, else the supervisor's pid
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
            parent_pid=int(env.get(ENV_PARENT_PID) or env.get(ENV_SUPERVISOR_PID) or 0),
            port=int(env.get(ENV_PORT) or 0),
            port_strict=env.get(ENV_PORT_STRICT) == "1",
            language=env.get(ENV_LANGUAGE, "python"),
        )

    def lab_path(self, name: str = "") -> str | None:
        """``<lab dir>/<name>`` (the lab dir itself without a name; created if missing), or None
        outside a lab, where services keep their SQLite stores in memory.

        Example:
            >>> Identity("config", "config-1").lab_path("config.sqlite") is None
            True
        """
        path = lab_dir_from_env({ENV_LAB_DIR: self.lab_dir})
        return os.path.join(path, name) if path and name else path
