"""Shared fixtures and the test tiers.

Tiers (``make test-fast`` runs the first two, ``make test`` all of them):

* pure: functions and classes with scripted inputs (no socket, no process);
* in-process gRPC: a servicer served by ``aio_server`` on 127.0.0.1:0 in the test's own process;
* ``integration``: anything that starts a process (a service, a supervisor daemon, a lab, a
  browser, a notebook kernel). Marked automatically, see ``tiers.py``; a test that starts a process
  without the mark fails, so the fast tier never quietly grows slow.

Every test that starts processes proves it left none behind (``_no_leftovers``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from inproc_grpc import AioServer  # noqa: E402
from lab_files import lab_file  # noqa: E402
from leaks import listening_ports, wait_until_gone  # noqa: E402
from tiers import ProcessGuard, is_notebook_item, starts_processes  # noqa: E402

if TYPE_CHECKING:
    from runtime.lab import Lab

ROOT = Path(__file__).resolve().parent.parent
LAB_UP_TIMEOUT_S = 30.0
LAB_LINGER_S = 2.0
OWN_PORTS_SETTLE_S = 2.0  # a stopped grpc.aio server closes its socket at once; this is slack

_guard = ProcessGuard()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that starts a process ``integration`` (see tiers.py for how it is decided)."""
    for item in items:
        if item.get_closest_marker("integration") is None and starts_processes(item):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):  # noqa: ANN201
    """While a test not marked ``integration`` runs (set-up to teardown), starting a process fails it."""
    _guard.enter(None if item.get_closest_marker("integration") else item.nodeid)
    try:
        yield
    finally:
        _guard.enter(None)


@pytest.fixture(autouse=True)
def _fast_tier_starts_no_process() -> Iterator[None]:
    """Fail a test without the ``integration`` mark that started a process (even if it caught the error)."""
    yield
    if _guard.violations:
        pytest.fail(_guard.violations[0], pytrace=False)


@pytest.fixture(autouse=True)
def _no_leftovers(request: pytest.FixtureRequest, tmp_path: Path):
    """After each test: no process of a lab under tmp_path, and no new listening TCP port."""
    # nbval keeps one kernel (with its own listening ZMQ ports) for all cells of a notebook.
    if is_notebook_item(request.node):
        yield
        return
    if request.node.get_closest_marker("integration") is None:
        # The guard keeps this tier from starting processes, so only this process's own ports
        # can leak (an in-process server left serving): a check of microseconds, not a scan of
        # every process on the machine, which would double the fast tier's time.
        own_before = _own_listening_ports()
        yield
        deadline = time.monotonic() + OWN_PORTS_SETTLE_S
        while (left_ports := _own_listening_ports() - own_before) and time.monotonic() < deadline:
            time.sleep(0.01)
        if left_ports:
            pytest.fail(f"test left listening ports behind: {sorted(left_ports)}", pytrace=False)
        return
    before = listening_ports([str(tmp_path)])
    yield
    left = wait_until_gone([str(tmp_path)], before)
    if left:
        pytest.fail(f"test left processes or ports behind:\n{left}", pytrace=False)


def _own_listening_ports() -> set[int]:
    return {
        c.laddr.port for c in psutil.Process().net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN
    }


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    """A fresh lab directory for one test."""
    d = tmp_path / "lab"
    d.mkdir()
    return d


@pytest.fixture
def lab_factory(tmp_path: Path, lab_dir: Path, _no_leftovers: None) -> Iterator[Callable[..., Lab]]:
    """Start a real lab from a file in tests/labs; it is brought down after the test.

        def test_x(lab_factory):
            lab = lab_factory("health")            # tests/labs/health.yaml, lab dir under tmp_path

    ``lab_factory(name, linger_s=2, timeout_s=30, **variables)``: a lab file that holds
    ``$NAME`` placeholders (absolute paths, a toolchain found on PATH) is written to tmp_path with
    ``variables`` (and ``ROOT``, the project root) filled in; any other is used where it is. The
    first lab runs in the ``lab_dir`` fixture's directory, further ones beside it. Teardown brings
    every lab down, then ``_no_leftovers`` (which this fixture depends on, so it runs after the
    teardown) proves that no process and no port is left.
    """
    from runtime.lab import Lab

    labs: list[Lab] = []

    def start(
        name: str, *, linger_s: float = LAB_LINGER_S, timeout_s: float = LAB_UP_TIMEOUT_S, **variables: str
    ) -> Lab:
        config = lab_file(name, tmp_path, **variables)
        directory = lab_dir if not labs else tmp_path / f"lab-{len(labs) + 1}"
        lab = Lab.up(lab_dir=directory, config=config, linger_s=linger_s, timeout_s=timeout_s)
        labs.append(lab)
        return lab

    yield start
    problems = []
    for lab in reversed(labs):
        try:
            lab.down()
        except Exception as exc:  # noqa: BLE001 - bring the others down too; _no_leftovers reports the rest
            problems.append(f"{lab!r}: {exc}")
    if problems:
        pytest.fail("lab.down() failed:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def aio_server() -> Iterator[Callable[[Callable[[object], object]], AioServer]]:
    """Serve servicers in-process with ``grpc.aio`` on 127.0.0.1:0 (the in-process tier).

        server = aio_server(lambda s: add_XServicer_to_server(XService(store), s))
        stub = XStub(grpc.insecure_channel(server.address))

    The servicers are added inside the server's own event loop (a thread); the server stops after
    the test.
    """
    servers: list[AioServer] = []

    def start(add_servicers: Callable[[object], object]) -> AioServer:
        server = AioServer.start(add_servicers)
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Notebooks run their lab in <project>/.lab: it must be gone when the session ends.

    Only checked when this session ran notebooks: otherwise a lab in <project>/.lab belongs to
    someone else (a notebook open in JupyterLab, another test run), and the cleanup below, which
    kills what is left, must not touch it.
    """
    if not any(is_notebook_item(item) for item in session.items):
        return
    left = wait_until_gone([str(ROOT / ".lab")], listening_ports())
    if left:
        print(f"\nlab processes left behind by the session:\n{left}", file=sys.stderr)
        session.exitstatus = 1


os.environ.setdefault("LAB_PROFILE", "ci")
