"""Real etcd members for tests: one member per test module for the parametrized store suites.

    from etcd_cluster import store_backend   # noqa: F401  (a fixture)

    def test_x(store_backend):     # runs twice: store_backend.name "local", then "etcd"
        ... store_backend.choice ...   # None locally; the etcd member's endpoints

``store_backend`` is module-scoped and parametrized, so pytest runs a module's local cases, then
starts one etcd member and runs its etcd cases; being module-scoped it is set up before each
test's leak check, which therefore sees the member as already there, and after the module the
member is stopped (and the session's leak check sees it gone).

Members run through the lab's own wrapper (``python -m runtime.services.etcd_member``), so the
READY line, the data under the lab dir and SIGTERM forwarding are tested on the way. Without
etcd installed the etcd cases skip with the install hint, except under CI=true, where they fail:
CI installs etcd-server (.ci/run) and must never count a skip as a pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from service_process import ROOT, ServiceProcess

from runtime.client.store_choice import StoreChoice, parse_store, read_cluster
from runtime.services.etcd_member.member import INSTALL_HINT, etcd_binary

MEMBER_READY_S = 40.0  # etcd starts in well under a second, but CI machines can be busy


def require_etcd() -> None:
    """Skip (fail under CI=true) when etcd is not installed."""
    if etcd_binary() is not None:
        return
    message = f"etcd is not installed: {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def start_member(lab_dir: Path, instance: str, members: int, supervisor_pid: int) -> ServiceProcess:
    """One etcd member through the lab's wrapper; waits for its READY line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update(
        LAB_DIR=str(lab_dir),
        LAB_SERVICE="etcd",
        LAB_INSTANCE=instance,
        LAB_SUPERVISOR_PID=str(supervisor_pid),
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.services.etcd_member", "--members", str(members)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sp = ServiceProcess(proc, instance)
    sp.wait_ready(timeout_s=MEMBER_READY_S)
    return sp


class Cluster:
    """``members`` etcd processes of one lab dir: start, kill and restart them by name."""

    def __init__(self, lab_dir: Path, members: int) -> None:
        self.lab_dir = lab_dir
        self.members = members
        self.owner = os.getpid()  # the cluster file's owner: this test process
        self.procs: dict[str, ServiceProcess] = {}

    def start(self, name: str) -> ServiceProcess:
        proc = start_member(self.lab_dir, name, self.members, self.owner)
        self.procs[name] = proc
        return proc

    def start_all(self) -> None:
        # Every member but the last must be READY before the next starts; a lone member answers
        # its health before it has a quorum, so starting them in turn never deadlocks.
        for i in range(1, self.members + 1):
            self.start(f"etcd-{i}")

    def stop(self, name: str) -> int:
        return self.procs.pop(name).stop()

    def stop_all(self) -> None:
        codes = {name: proc.stop() for name, proc in list(self.procs.items())}
        self.procs.clear()
        assert all(code == 0 for code in codes.values()), codes

    @property
    def choice(self) -> StoreChoice:
        return read_cluster(str(self.lab_dir))


@dataclass(frozen=True)
class Backend:
    """The store a parametrized test runs on: ``name`` and, for etcd, the member's endpoints."""

    name: str
    choice: StoreChoice | None = None


# etcd's cases start a member: the integration tier (tests/tiers.py cannot see it statically).
BACKENDS = ["local", pytest.param("etcd", marks=pytest.mark.integration)]


@pytest.fixture(scope="module", params=BACKENDS)
def store_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """``local``, then ``etcd`` with a one-member cluster for this module, stopped after it."""
    if request.param == "local":
        yield Backend("local")
        return
    require_etcd()
    cluster = Cluster(tmp_path_factory.mktemp("etcd-lab"), 1)
    cluster.start_all()
    try:
        yield Backend("etcd", cluster.choice)
    finally:
        cluster.stop_all()


def unique_prefix() -> str:
    """A key prefix no other test uses (the module shares one etcd)."""
    return f"/test-{uuid.uuid4().hex[:12]}/"


def endpoints_env(choice: StoreChoice) -> str:
    """The ``LAB_STORE`` value naming ``choice``'s endpoints."""
    value = "etcd:" + ",".join(choice.endpoints)
    assert parse_store(value).endpoints == choice.endpoints
    return value
