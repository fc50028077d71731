"""One member of the lab's etcd cluster, run by the supervisor like any service.

    python -m runtime.services.etcd_member [--members 3]     # LAB_DIR, LAB_INSTANCE=etcd-2

The wrapper exists because etcd cannot speak the lab's contract itself: it needs its peers' URLs
before it starts, and the supervisor waits for a ``READY port=N`` line. So it

1. finds the cluster plan in ``<lab dir>/etcd-cluster.json`` or, as the first member of this lab
   (the file names another supervisor pid, or is missing), writes one: a name and two free
   loopback ports (client, peer) per member, under a file lock so three members agree. A fresh
   lab wipes the previous lab's member data, so every lab starts with an empty cluster;
2. starts ``/usr/bin/etcd`` (Debian's ``etcd-server``) with its data in ``<lab dir>/etcd/<name>``,
   every URL on 127.0.0.1, fast elections (``HEARTBEAT_MS``, ``ELECTION_MS``) so a lost member
   shows within a second, and the parent-death signal armed so etcd never outlives its wrapper;
3. waits until the member answers grpc.health.v1 on its client port (etcd serves it; a lone first
   member answers before it has a quorum, so members never wait for each other), prints
   ``READY port=<client port>`` and then follows etcd: SIGTERM/SIGINT are forwarded, etcd's exit
   code is the wrapper's.

The supervisor's health check and liveness probes then talk to etcd itself, so a member shows in
the health service like any other instance. Without etcd installed it exits 2 with a message that
says how to install it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runtime.client.store_choice import cluster_path
from runtime.identity import (
    ENV_LAB_DIR,
    ETCD_DATA_DIR,
    EXIT_FAILED,
    EXIT_USAGE,
    LOOPBACK,
    Identity,
    ready_line,
)

ETCD_BINARY = "/usr/bin/etcd"
INSTALL_HINT = (
    "install Debian's etcd-server package (sudo apt-get install etcd-server); .ci/run does it in CI"
)
DEFAULT_MEMBERS = 3
HEARTBEAT_MS = 50
ELECTION_MS = 500  # 10 heartbeats; etcd's minimum lease TTL becomes 1.5 x this, rounded up to 1 s
HISTORY_REVISIONS = 10_000
HEALTH_TIMEOUT_S = 30.0  # a loaded 2-core machine can take seconds to start etcd
HEALTH_POLL_S = 0.05
PR_SET_PDEATHSIG = 1


def etcd_binary() -> str | None:
    """The etcd executable: Debian's /usr/bin/etcd, else the first on PATH; None when missing."""
    if os.access(ETCD_BINARY, os.X_OK):
        return ETCD_BINARY
    return shutil.which("etcd")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def plan_cluster(lab_dir: str, members: int, owner: str) -> list[dict[str, object]]:
    """The members' names and ports for this lab, shared through the cluster file.

    ``owner`` identifies the lab run (the supervisor pid): a file written by another run is
    replaced and that run's member data removed, so a new lab starts with a new cluster.
    """
    path = cluster_path(lab_dir)
    data_root = os.path.join(lab_dir, ETCD_DATA_DIR)
    os.makedirs(data_root, mode=0o700, exist_ok=True)
    fd = os.open(data_root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the three members start at once: one writes, two read
        with contextlib.suppress(OSError, ValueError):
            with open(path, encoding="utf-8") as f:
                plan = json.load(f)
            if plan.get("owner") == owner and len(plan.get("members", [])) == members:
                return list(plan["members"])
        for name in os.listdir(data_root):
            shutil.rmtree(os.path.join(data_root, name), ignore_errors=True)
        planned = [
            {"name": f"etcd-{i}", "client_port": _free_port(), "peer_port": _free_port()}
            for i in range(1, members + 1)
        ]
        tmp = path + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
            json.dump({"owner": owner, "members": planned}, f)
        os.replace(tmp, path)
        return planned
    finally:
        os.close(fd)


def etcd_command(
    binary: str, lab_dir: str, me: dict[str, object], plan: list[dict[str, object]]
) -> list[str]:
    """The etcd command line of member ``me`` (loopback URLs only)."""
    client = f"http://{LOOPBACK}:{me['client_port']}"
    peer = f"http://{LOOPBACK}:{me['peer_port']}"
    initial = ",".join(f"{m['name']}=http://{LOOPBACK}:{m['peer_port']}" for m in plan)
    return [
        binary,
        f"--name={me['name']}",
        f"--data-dir={os.path.join(lab_dir, ETCD_DATA_DIR, str(me['name']))}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={initial}",
        f"--initial-cluster-token=lab-{os.path.basename(os.path.dirname(lab_dir))}",
        "--initial-cluster-state=new",
        f"--heartbeat-interval={HEARTBEAT_MS}",
        f"--election-timeout={ELECTION_MS}",
        # History is bounded like the local broker's: older revisions are compacted away, and a
        # watch resuming from one gets OUT_OF_RANGE ("no longer kept"), as it does locally.
        "--auto-compaction-mode=revision",
        f"--auto-compaction-retention={HISTORY_REVISIONS}",
        "--logger=zap",
        "--log-level=error",
    ]


def _arm_parent_death() -> None:
    """In the etcd child: SIGKILL when the wrapper dies (so no etcd outlives a killed wrapper)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def wait_serving(port: int, proc: subprocess.Popen[bytes], timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
    """Until grpc.health.v1 on ``port`` says SERVING (True), etcd exits or time runs out (False)."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(f"{LOOPBACK}:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(HEALTH_POLL_S)
    return False


def main(argv: list[str] | None = None) -> int:
    """Run one member until SIGTERM; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m runtime.services.etcd_member")
    parser.add_argument("--members", type=int, default=DEFAULT_MEMBERS, help="cluster size (1, 3 or 5)")
    args = parser.parse_args(argv)
    identity = Identity.from_env(default_service="etcd")
    binary = etcd_binary()
    if binary is None:
        print(f"ERROR etcd is not installed ({ETCD_BINARY} is missing): {INSTALL_HINT}", file=sys.stderr)
        return EXIT_USAGE
    lab_dir = identity.lab_path()
    if not lab_dir:
        print(f"ERROR an etcd member keeps its data in the lab dir: set {ENV_LAB_DIR}", file=sys.stderr)
        return EXIT_USAGE
    owner = str(identity.supervisor_pid or os.getppid())
    plan = plan_cluster(lab_dir, args.members, owner)
    me = next((m for m in plan if m["name"] == identity.instance_id), None)
    if me is None:
        names = ", ".join(str(m["name"]) for m in plan)
        print(
            f"ERROR instance {identity.instance_id!r} is no member of this cluster ({names})", file=sys.stderr
        )
        return EXIT_USAGE
    proc = subprocess.Popen(etcd_command(binary, lab_dir, me, plan), preexec_fn=_arm_parent_death)
    stopping: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)  # recorded; the main thread below only waits
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    port = int(str(me["client_port"]))
    if not wait_serving(port, proc):
        if proc.poll() is None:
            proc.terminate()
        code = proc.wait()
        print(f"ERROR etcd member {me['name']} did not answer its health on port {port} (exit {code})",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    print(ready_line(port), flush=True)
    code = proc.wait()
    return 0 if stopping and code in (0, -signal.SIGTERM) else (code if code > 0 else EXIT_FAILED)
