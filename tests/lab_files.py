"""The lab files the tests and benchmarks start: tests/labs/<name>.yaml, templates filled in.

    lab_file("health", tmp_path)                      # tests/labs/health.yaml itself
    lab_file("polyglot", tmp_path, NODE="/usr/bin/node")   # a filled-in copy in tmp_path

A lab file holding ``$NAME`` placeholders (absolute paths, a toolchain found on PATH) is written to
``tmp_path`` with the variables (and ``ROOT``, the project root) filled in; any other is used where
it is, so its folder (tests/labs) is the project root its relative paths resolve against.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parent.parent
LABS = Path(__file__).resolve().parent / "labs"


def lab_file(name: str, tmp_path: Path, **variables: str) -> Path:
    """tests/labs/<name>.yaml, or a copy in tmp_path with its ``$NAME`` placeholders filled in."""
    path = LABS / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in LABS.glob("*.yaml")))
        raise FileNotFoundError(f"no lab file {path}; the test labs are: {known}")
    text = path.read_text(encoding="utf-8")
    if "$" not in text:
        return path
    filled = Template(text).substitute(ROOT=str(ROOT), **variables)  # a missing variable raises KeyError
    out = tmp_path / path.name
    out.write_text(filled, encoding="utf-8")
    return out
