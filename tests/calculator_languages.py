"""The calculator's server languages for the lab tests that are about the agent (health push,
faults, live config): the same test runs against the Python calculator and the TypeScript one.

    @pytest.mark.parametrize("lab", CALCULATOR_LANGUAGES, indirect=True)
    def test_x(lab): ...

    @pytest.fixture
    def lab(request, lab_factory):
        return calculator_lab(lab_factory, "chaos", getattr(request, "param", "python"))

``calculator_lab(lab_factory, "chaos", "typescript")`` starts tests/labs/chaos-typescript.yaml: the
same lab with the lab service ``calculator`` served by calculator/node/dist/server.js, so a test
body needs no change. Without node or the build the TypeScript case is skipped with the reason
(``make polyglot``), except under CI (``CI`` or ``LAB_REQUIRE_POLYGLOT=1``), where it fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from runtime.lab import Lab

ROOT = Path(__file__).resolve().parent.parent
TS_SERVER = ROOT / "calculator" / "node" / "dist" / "server.js"
CALCULATOR_LANGUAGES = ("python", "typescript")


def node_or_skip() -> str:
    """node on PATH with the TypeScript server built, or skip (fail under CI) saying what to run."""
    node = shutil.which("node")
    if node is None or not TS_SERVER.exists():
        reason = f"the TypeScript server is not built (node={node}, {TS_SERVER} missing); run `make polyglot`"
        if os.environ.get("CI") or os.environ.get("LAB_REQUIRE_POLYGLOT") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return node


def calculator_lab(
    lab_factory: Callable[..., Lab],
    name: str,
    language: str,
    *,
    typescript_name: str = "",
    **kwargs: object,
) -> Lab:
    """tests/labs/<name>.yaml for Python; for TypeScript <typescript_name> (default <name>-typescript)."""
    if language == "python":
        return lab_factory(name, **kwargs)
    if language != "typescript":
        raise ValueError(f"unknown calculator language {language!r}; use one of {CALCULATOR_LANGUAGES}")
    return lab_factory(typescript_name or f"{name}-typescript", NODE=node_or_skip(), **kwargs)
