"""Shared fixtures: every test that starts processes proves it left none behind."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from leaks import listening_ports, wait_until_gone  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _is_notebook_item(item: pytest.Item) -> bool:
    # nbval keeps one kernel (with its own listening ZMQ ports) for all cells of a notebook.
    return type(item).__module__.startswith("nbval")


@pytest.fixture(autouse=True)
def _no_leftovers(request: pytest.FixtureRequest, tmp_path: Path):
    """After each test: no process of a lab under tmp_path, and no new listening TCP port."""
    if _is_notebook_item(request.node):
        yield
        return
    before = listening_ports([str(tmp_path)])
    yield
    left = wait_until_gone([str(tmp_path)], before)
    if left:
        pytest.fail(f"test left processes or ports behind:\n{left}", pytrace=False)


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    """A fresh lab directory for one test."""
    d = tmp_path / "lab"
    d.mkdir()
    return d


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Notebooks run their lab in <project>/.lab: it must be gone when the session ends."""
    left = wait_until_gone([str(ROOT / ".lab")], listening_ports())
    if left:
        print(f"\nlab processes left behind by the session:\n{left}", file=sys.stderr)
        session.exitstatus = 1


os.environ.setdefault("LAB_PROFILE", "ci")
