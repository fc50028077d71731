"""The fencing drill of chapter 11: a leader process that can be frozen, and the fenced write.

A lock with a TTL is a lease: a holder that stops renewing loses it, and the next holder gets a
larger *fencing token*. A holder frozen in the middle of its work (SIGSTOP, a GC pause, a VM
migration) does not know it lost the lock; when it wakes up it carries on writing. Only the
resource can stop it: it remembers the largest token that wrote and refuses older ones.

    from fencing import fenced_write, Refused
    fenced_write(lab.state, "drill/resource", token=7, owner="notebook")   # Refused if a token > 7 wrote

As a program, the leader of the drill (started by the notebook, with the lab's token and the
broker's address in its environment, LAB_TOKEN and LAB_BROKER_ADDR):

    python fencing.py --lock drill/leader --resource drill/resource --owner leader-A --ttl-ms 1000

It takes the lock, prints ``LEADING <token>``, then every TICK_S writes to the resource with its
token and renews the lock. When a write is refused it logs why, prints ``REFUSED ...`` and exits
with EXIT_REFUSED; when a renewal fails it exits with EXIT_LOST. Its log lines go to the lab's
logger as service ``leader``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Protocol

TICK_S = 0.1
EXIT_REFUSED = 3
EXIT_LOST = 4
EXIT_NO_LOCK = 5
LOG_SERVICE = "leader"


class Refused(Exception):
    """The resource has seen a newer fencing token: this writer is no longer the leader."""


class StateLike(Protocol):
    """What a fenced write needs: ``lab.state`` has it, and so does the drill's leader."""

    def get(self, key: str) -> dict[str, Any]: ...
    def cas(self, key: str, expected_version: int, value: str) -> dict[str, Any]: ...


def fenced_write(state: StateLike, resource: str, token: int, owner: str) -> dict[str, Any]:
    """Write ``{"token", "owner", "writes"}`` to ``resource`` unless a newer token wrote first.

    The check and the write are one compare-and-swap on the version read, so a newer leader
    cannot slip in between. Returns the record written.

    Raises:
        Refused: the stored token is larger than ``token`` (the message names both and the owner).
    """
    while True:
        current = state.get(resource)
        empty: dict[str, Any] = {"token": 0, "owner": "", "writes": 0}
        record: dict[str, Any] = json.loads(current["value"]) if current["value"] else empty
        if record["token"] > token:
            raise Refused(
                f"{owner}: write refused, token {token} is older than {record['token']} ({record['owner']})"
            )
        mine = {"token": token, "owner": owner, "writes": record["writes"] + 1}
        if state.cas(resource, current["version"], json.dumps(mine))["swapped"]:
            return mine


def _lead(args: argparse.Namespace) -> int:
    from runtime.client import connect
    from runtime.client.jsonlog import format_line
    from runtime.client.logship import LogShipper, entry_from_output
    from runtime.identity import STATE_GRPC_SERVICE
    from runtime.lab.connection import Connection
    from runtime.lab.state import State

    shipper = LogShipper(name=args.owner)
    channel = connect(STATE_GRPC_SERVICE)
    state = State(Connection.single(channel))

    def log(level: str, text: str) -> None:
        line = format_line(text, level=level)
        shipper.emit(
            entry_from_output(LOG_SERVICE, args.owner, os.getpid(), "stdout", int(time.time() * 1000), line)
        )

    try:
        grant = state.lock(args.lock, args.owner, ttl_ms=args.ttl_ms, wait_ms=5000)
        if not grant["acquired"]:
            log("ERROR", f"{args.owner} could not get {args.lock}: held by {grant['holder']}")
            return EXIT_NO_LOCK
        token = grant["fencing_token"]
        log("INFO", f"{args.owner} leads {args.lock} with fencing token {token}")
        print(f"LEADING {token}", flush=True)
        while True:
            time.sleep(TICK_S)
            try:
                fenced_write(state, args.resource, token, args.owner)
            except Refused as exc:
                log("WARN", str(exc))
                print(f"REFUSED {exc}", flush=True)
                return EXIT_REFUSED
            renewed = state.lock(args.lock, args.owner, ttl_ms=args.ttl_ms)
            if not renewed["acquired"]:
                log("WARN", f"{args.owner} lost {args.lock} to {renewed['holder']}")
                return EXIT_LOST
    finally:
        channel.close()
        shipper.close(timeout_s=2.0)


def main(argv: list[str] | None = None) -> int:
    """Run the drill's leader; returns its exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lock", required=True)
    parser.add_argument("--resource", required=True)
    parser.add_argument("--owner", required=True)
    parser.add_argument("--ttl-ms", type=int, default=1000)
    return _lead(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
