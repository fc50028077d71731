"""Generated code is committed: it must match what proto/generate.py makes from proto/ today."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
