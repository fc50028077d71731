"""Debian's Chromium through Playwright, for the tests that check a page as a learner sees it.

Playwright's own browser download cannot work here: tests drive /usr/bin/chromium (`.ci/run`
installs it). Locally a missing browser skips with what to install; under CI it fails.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Headless as root, and no background traffic: this machine has no network beyond loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots a person can look at after the run (gitignored).
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def need_browser() -> Any:
    """The Playwright sync API module, or skip (locally) / fail (CI) saying what is missing."""
    problem = ""
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)"
    try:
        from playwright import sync_api
    except ImportError:
        problem = problem or "the playwright package is missing (pip install -e '.[dev]')"
        sync_api = None
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {problem}", pytrace=False)
        pytest.skip(problem)
    return sync_api


def artifacts_dir(name: str) -> Path:
    """``test-artifacts/<name>/``, created empty-or-existing, for one test's screenshots."""
    path = ARTIFACTS / name
    path.mkdir(parents=True, exist_ok=True)
    return path
