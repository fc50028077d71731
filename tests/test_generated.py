"""Generated code is committed: it must match what `make gen` makes from the .proto files today.

Python: proto/generate.py into runtime/v1 and calculator/v1. TypeScript (protobuf-es v2):
calculator/node/scripts/gen.mjs into calculator/node/src/gen.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "calculator" / "node"
GEN_TIMEOUT_S = 90


def test_generated_python_is_fresh(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), "--out", str(tmp_path)], check=True)
    stale = []
    for pkg in ("runtime/v1", "calculator/v1"):
        fresh = sorted(p.name for p in (tmp_path / pkg).iterdir())
        committed = sorted(
            p.name for p in (ROOT / pkg).iterdir() if p.is_file() and p.suffix in (".py", ".pyi")
        )
        assert fresh == committed, f"{pkg}: generated files differ from committed ones; run `make gen`"
        stale += [
            f"{pkg}/{n}" for n in fresh if not filecmp.cmp(tmp_path / pkg / n, ROOT / pkg / n, shallow=False)
        ]
    assert not stale, f"stale generated code (run `make gen` and commit): {stale}"


def test_generated_code_says_do_not_edit() -> None:
    for path in [*(ROOT / "runtime/v1").glob("*_pb2*.py"), *(ROOT / "calculator/v1").glob("*_pb2*.py")]:
        assert "DO NOT EDIT" in path.read_text()[:300], path


def _stale(cmp: filecmp.dircmp, prefix: str = "") -> list[str]:
    out = [prefix + n for n in cmp.left_only + cmp.right_only + cmp.diff_files + cmp.funny_files]
    for name, sub in cmp.subdirs.items():
        out += _stale(sub, f"{prefix}{name}/")
    return out


@pytest.mark.polyglot
def test_generated_typescript_is_fresh(tmp_path: Path) -> None:
    """calculator/node/src/gen is committed (DO NOT EDIT); regenerating it must change nothing."""
    if shutil.which("node") is None or not (NODE / "node_modules" / ".bin" / "buf").exists():
        reason = "node or calculator/node/node_modules missing; run `make polyglot`"
        if os.environ.get("CI") or os.environ.get("LAB_REQUIRE_POLYGLOT") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    out = tmp_path / "gen"
    done = subprocess.run(
        ["node", "scripts/gen.mjs", str(out)], cwd=NODE, capture_output=True, text=True, timeout=GEN_TIMEOUT_S
    )
    assert done.returncode == 0, done.stdout + done.stderr
    committed = NODE / "src" / "gen"
    stale = _stale(filecmp.dircmp(out, committed))
    assert not stale, f"calculator/node/src/gen is stale ({stale}); run `make gen` and commit"
    for path in committed.rglob("*.ts"):
        assert "DO NOT EDIT" in path.read_text().splitlines()[0], path
