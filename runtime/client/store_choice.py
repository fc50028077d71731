"""Which store a service uses (``LAB_STORE``), and how an unreachable etcd cluster is told.

A lab file chooses the store of the broker, config and state services (``store:`` in lab.yaml,
runtime/supervisor/config.py); the supervisor hands the choice to every child in ``LAB_STORE``:

===================================  ==========================================================
``local`` (or unset)                 in-process registry, SQLite config and state (the default)
``etcd``                             the lab's own cluster: endpoints and member names from
                                     ``<lab dir>/etcd-cluster.json`` (written by its members,
                                     runtime/services/etcd_member)
``etcd:127.0.0.1:2379,127.0.0.1:…``  an external cluster at these endpoints (several: IPv4)
===================================  ==========================================================

This module is light on purpose (no etcd client): the supervisor validates lab files with it and
every service reads its choice with it; only a service on etcd loads the client
(runtime/client/etcd.py). When the cluster cannot answer, the client raises StoreUnavailable with
``outage_message``: which members are down and what a quorum needs, e.g. ``etcd store
unavailable: 2 of 3 members are down (etcd-2 at 127.0.0.1:40111, etcd-3 at 127.0.0.1:40113);
reads and writes need 2 of 3 (a quorum): start them again``.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from runtime.errors import ServiceUnavailable
from runtime.identity import ENV_LAB_DIR, ENV_STORE, ETCD_CLUSTER_FILE, LOOPBACK

STORE_LOCAL = "local"
STORE_ETCD = "etcd"
PROBE_TIMEOUT_S = 0.3  # one TCP connect per member when naming the ones that are down
IPV4_ENDPOINT = re.compile(r"\d{1,3}(\.\d{1,3}){3}:\d{1,5}")


class StoreUnavailable(ServiceUnavailable):
    """The etcd cluster did not answer (no quorum, or nothing listens): gRPC UNAVAILABLE."""


@dataclass(frozen=True)
class StoreChoice:
    """Which store a service uses; for etcd, its endpoints and a name per endpoint."""

    kind: str = STORE_LOCAL
    endpoints: tuple[str, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_etcd(self) -> bool:
        """True for either etcd form."""
        return self.kind == STORE_ETCD


def parse_store(value: str, lab_dir: str = "") -> StoreChoice:
    """Read a ``LAB_STORE`` value (table above).

    Example:
        >>> parse_store("etcd:127.0.0.1:2379").endpoints
        ('127.0.0.1:2379',)
        >>> parse_store("").kind
        'local'

    Raises:
        ValueError: an unknown kind, or ``etcd`` without endpoints and without a cluster file.
    """
    text = value.strip()
    if text in ("", STORE_LOCAL):
        return StoreChoice()
    if text == STORE_ETCD:
        return read_cluster(lab_dir)
    if text.startswith(STORE_ETCD + ":"):
        endpoints = tuple(e.strip() for e in text[len(STORE_ETCD) + 1 :].split(",") if e.strip())
        if len(endpoints) > 1 and not all(IPV4_ENDPOINT.fullmatch(e) for e in endpoints):
            raise ValueError(
                f"{ENV_STORE}={text[:200]!r}: several endpoints must be IPv4 addresses with ports "
                "(one gRPC target spreads calls over them), e.g. 'etcd:127.0.0.1:2379,127.0.0.1:22379'"
            )
        if endpoints:
            return StoreChoice(STORE_ETCD, endpoints, {e: e for e in endpoints})
    raise ValueError(
        f"{ENV_STORE}={text[:200]!r} is not a store; use 'local', 'etcd' (the lab's own cluster) "
        "or 'etcd:HOST:PORT,HOST:PORT'"
    )


def store_from_env(env: Mapping[str, str] | None = None) -> StoreChoice:
    """The store this process was given (``LAB_STORE``; the lab dir for the cluster file)."""
    env = os.environ if env is None else env
    return parse_store(env.get(ENV_STORE, ""), env.get(ENV_LAB_DIR, ""))


def cluster_path(lab_dir: str) -> str:
    """``<lab dir>/etcd-cluster.json``: the members' names and ports, written by the first member."""
    return os.path.join(lab_dir, ETCD_CLUSTER_FILE)


def read_cluster(lab_dir: str) -> StoreChoice:
    """The lab's own cluster from its cluster file.

    Raises:
        ValueError: no lab dir or no cluster file (the etcd members have not started).
    """
    path = cluster_path(lab_dir) if lab_dir else ""
    try:
        with open(path, encoding="utf-8") as f:
            members = json.load(f)["members"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(
            f"store 'etcd' needs the lab's etcd members, but {path or '<no lab dir>'} is not readable "
            f"({exc}); start the etcd service first (depends_on: {{etcd: ready}}, see lab.etcd.yaml)"
        ) from None
    endpoints = tuple(f"{LOOPBACK}:{m['client_port']}" for m in members)
    return StoreChoice(STORE_ETCD, endpoints, {f"{LOOPBACK}:{m['client_port']}": m["name"] for m in members})


def down_members(choice: StoreChoice, timeout_s: float = PROBE_TIMEOUT_S) -> list[str]:
    """``name at host:port`` of every endpoint nothing listens on (a TCP connect each)."""
    down = []
    for endpoint in choice.endpoints:
        host, _, port = endpoint.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                pass
        except OSError:
            down.append(f"{choice.names.get(endpoint, endpoint)} at {endpoint}")
    return down


def outage_message(choice: StoreChoice, detail: str) -> str:
    """The StoreUnavailable text: which members are down and what quorum needs."""
    total = len(choice.endpoints)
    quorum = total // 2 + 1
    down = down_members(choice)
    if down:
        return (
            f"etcd store unavailable: {len(down)} of {total} members are down ({', '.join(down)}); "
            f"reads and writes need {quorum} of {total} (a quorum): start them again ({detail[:200]})"
        )
    return f"etcd store unavailable: every member listens but the cluster did not answer ({detail[:200]})"
