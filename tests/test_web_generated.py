"""The web page's generated TypeScript (runtime/services/web/page/src/gen) is committed and fresh."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parent.parent / "runtime" / "services" / "web" / "page"
COMMITTED = PAGE / "src" / "gen" / "runtime" / "v1"
GEN_TIMEOUT_S = 90


def test_web_page_generated_code_is_fresh_and_marked(tmp_path: Path) -> None:
    if shutil.which("node") is None or not (PAGE / "node_modules" / ".bin" / "buf").exists():
        reason = f"node or {PAGE}/node_modules missing; run `make web`"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    done = subprocess.run(["node", "gen.mjs", str(tmp_path)], cwd=PAGE, capture_output=True, text=True,
                          timeout=GEN_TIMEOUT_S)  # fmt: skip
    assert done.returncode == 0, done.stderr
    fresh = tmp_path / "src" / "gen" / "runtime" / "v1"
    cmp = filecmp.dircmp(fresh, COMMITTED)
    stale = cmp.left_only + cmp.right_only + cmp.diff_files
    assert not stale, f"stale generated code in {COMMITTED} (run `make gen` and commit): {stale}"
    for path in COMMITTED.glob("*.ts"):
        assert path.read_text().startswith("// DO NOT EDIT"), path
