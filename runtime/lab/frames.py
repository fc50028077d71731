"""Proto messages to pandas frames: the tables a learner reads in a notebook.

Every function takes messages and returns a DataFrame with fixed columns, also when empty, so
cells like ``lab.status().query("state == 'RUNNING'")`` work on a lab that has nothing yet.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import pandas as pd

from runtime.v1 import broker_pb2, health_pb2, supervisor_pb2

STATUS_COLUMNS = [
    "service", "instance", "pid", "state", "restarts", "port", "http_port", "uptime_s", "cpu_percent",
    "rss_mb", "language", "last_exit_reason", "responding", "liveness",
]  # fmt: skip
EVENT_COLUMNS = [
    "time",
    "service",
    "instance",
    "pid",
    "event",
    "reason",
    "rule",
    "exit_code",
    "next_attempt_at",
    "seq",
]
LOOKUP_COLUMNS = ["service", "instance", "address", "language", "health", "pid", "grpc_services"]


def enum_label(enum: object, value: int, prefix: str = "") -> str:
    """``PROCESS_STATE_RUNNING`` -> ``RUNNING``: the enum name without its type prefix."""
    name = enum.Name(value)  # type: ignore[attr-defined]
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name


def ms_to_time(ms: int) -> pd.Timestamp | None:
    """Unix milliseconds -> a UTC timestamp (None for 0, "not set")."""
    return pd.Timestamp(ms, unit="ms", tz="UTC") if ms else None


def status_frame(processes: Iterable[supervisor_pb2.ProcessInfo]) -> pd.DataFrame:
    """One row per process instance."""
    rows = [
        {
            "service": p.service,
            "instance": p.instance_id,
            "pid": p.pid or None,
            "state": enum_label(supervisor_pb2.ProcessState, p.state, "PROCESS_STATE_"),
            "restarts": p.restarts,
            "port": p.port or None,
            "http_port": p.http_port or None,  # Connect (HTTP/1.1): curl and the web page
            "uptime_s": round(p.uptime_s, 1),
            "cpu_percent": round(p.cpu_percent, 1),
            "rss_mb": round(p.rss_mb, 1),
            "language": p.language,
            "last_exit_reason": p.last_exit_reason,
            # The supervisor's liveness probe: False while it does not answer (e.g. SIGSTOPped).
            "responding": not p.not_responding,
            "liveness": p.liveness_reason,
        }
        for p in processes
    ]
    return pd.DataFrame(rows, columns=STATUS_COLUMNS).astype({"pid": "Int64", "port": "Int64", "http_port": "Int64"})


def events_frame(events: Iterable[supervisor_pb2.ProcessEvent]) -> pd.DataFrame:
    """One row per lifecycle decision, oldest first."""
    rows = [
        {
            "time": pd.Timestamp(e.timestamp_us or e.timestamp * 1000, unit="us", tz="UTC"),
            "service": e.service,
            "instance": e.instance_id,
            "pid": e.pid or None,
            "event": enum_label(supervisor_pb2.ProcessEventKind, e.kind, "PROCESS_EVENT_KIND_"),
            "reason": e.reason,
            "rule": e.rule,
            "exit_code": e.exit_code,
            "next_attempt_at": ms_to_time(e.next_attempt_at),
            "seq": e.seq,
        }
        for e in events
    ]
    return pd.DataFrame(rows, columns=EVENT_COLUMNS).astype({"pid": "Int64"})


def lookup_frame(instances: Iterable[broker_pb2.ServiceInstance]) -> pd.DataFrame:
    """One row per registered instance, as the broker sees it."""
    rows = [
        {
            "service": i.service_name,
            "instance": i.instance_id,
            "address": i.address,
            "language": i.language,
            "health": health_pb2.HealthState.Name(i.health),
            "pid": i.pid or None,
            "grpc_services": ", ".join(i.grpc_services),
        }
        for i in instances
    ]
    return pd.DataFrame(rows, columns=LOOKUP_COLUMNS).astype({"pid": "Int64"})


def now_ms() -> int:
    """Unix time in milliseconds."""
    return int(time.time() * 1000)
