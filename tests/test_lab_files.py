"""Every lab file in tests/labs is valid, and lab_factory fills a template's placeholders.

The fast tier catches a broken lab file before an integration test (or a benchmark, which uses
the same files) spends a lab start on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_files import LABS, ROOT, lab_file

from runtime.supervisor.config import load_config

LAB_FILES = sorted(LABS.glob("*.yaml"))
TEMPLATE_VARIABLES = {"NODE": "/usr/bin/node"}


@pytest.mark.parametrize("path", LAB_FILES, ids=[p.stem for p in LAB_FILES])
def test_lab_file_is_valid(path: Path, tmp_path: Path) -> None:
    config = load_config(lab_file(path.stem, tmp_path, **TEMPLATE_VARIABLES))
    assert config.services, f"{path.name} starts no service"


def test_template_is_filled_in_a_copy_and_plain_files_are_used_in_place(tmp_path: Path) -> None:
    assert lab_file("small", tmp_path) == LABS / "small.yaml"
    filled = lab_file("polyglot", tmp_path, NODE="/opt/node")
    assert filled.parent == tmp_path
    text = filled.read_text(encoding="utf-8")
    assert "$" not in text and f"[/opt/node, {ROOT}/calculator/node/dist/server.js]" in text
    with pytest.raises(KeyError, match="NODE"):
        lab_file("polyglot", tmp_path)
    with pytest.raises(FileNotFoundError, match="the test labs are: .*small"):
        lab_file("no-such-lab", tmp_path)
