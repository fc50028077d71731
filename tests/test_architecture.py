"""The import rules of the floor plan, checked on the source (a small AST walk, no imports run).

Imports run one way (DESIGN.md, README "Architecture"): the lab API and widgets -> client ->
contracts; services -> agent -> client -> contracts; supervisor -> contracts; calculator (the demo)
-> runtime; notebooks -> the public API. Each module (and each notebook, read cell by cell) belongs
to one layer; ``RULES`` says what a layer may import besides itself. Only first-party imports count (``runtime``, ``widgets``, ``calculator``); imports inside
functions and under ``TYPE_CHECKING`` count too (a lazy import is still a dependency), and
``from runtime import identity`` counts as ``runtime.identity``.

Patterns: ``a.b.*`` is ``a.b`` and everything below it; ``a.b`` is that module alone.
A module no layer covers is reported too, so a new top-level module has to be placed.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("runtime", "widgets", "calculator")

# The bottom of the runtime: generated messages, the error tree, the cross-process contract
# (identity), and pure rules that two processes must decide alike (liveness: health and supervisor).
CONTRACTS = ("runtime.v1.*", "runtime.errors.*", "runtime.identity.*", "runtime.liveness.*")
# Modules at the root of runtime/services/ that every service shares; any other
# runtime.services.<name> is one service's package, which no other service may import.
SERVICES_SHARED = (
    "runtime.services",
    "runtime.services.main",
    "runtime.services.store_service",
    "runtime.services.watchers",
)
SERVICE_MAY_IMPORT = (
    *CONTRACTS,
    "runtime.client.*",
    "runtime.connect.*",
    "runtime.agent.*",
    *SERVICES_SHARED,
)


@dataclass(frozen=True)
class Rule:
    """One layer: which modules it holds and what they may import besides their own layer."""

    layer: str
    holds: tuple[str, ...]
    may_import: tuple[str, ...]
    why: str


# Order matters only for reading; each module matches the rule with the longest pattern.
RULES: tuple[Rule, ...] = (
    Rule("runtime.v1", ("runtime.v1.*",), (), "generated contracts import only each other"),
    Rule("runtime.errors", ("runtime.errors.*",), ("runtime.v1.*",), "the error tree is a contract"),
    Rule("runtime.identity", ("runtime.identity.*",), ("runtime.v1.*",), "the cross-process contract"),
    Rule(
        "runtime.liveness",
        ("runtime.liveness.*",),
        ("runtime.v1.*",),
        "a pure rule the health service and the supervisor share",
    ),
    Rule("runtime.client", ("runtime.client.*",), CONTRACTS, "what any caller uses"),
    Rule(
        "runtime.connect",
        ("runtime.connect.*",),
        CONTRACTS,
        "Connect (HTTP/1.1) beside gRPC, for any server: services and the supervisor",
    ),
    Rule(
        "runtime.agent",
        ("runtime.agent.*",),
        (*CONTRACTS, "runtime.client.*", "runtime.connect.*"),
        "what a service embeds",
    ),
    Rule(
        "runtime.services (shared)",
        SERVICES_SHARED,
        SERVICE_MAY_IMPORT,
        "serve/READY/stop and watcher fan-out shared by every service",
    ),
    Rule(
        "runtime.services.<name>",
        ("runtime.services.*",),
        SERVICE_MAY_IMPORT,  # + its own package, added in layer_of()
        "a service talks to another service over gRPC, never through its code",
    ),
    Rule(
        "runtime.supervisor",
        ("runtime.supervisor.*",),
        (*CONTRACTS, "runtime.client.*", "runtime.connect.*"),
        "the daemon runs services as processes; it never imports them, the agent or the Lab",
    ),
    Rule(
        "runtime.lab",
        ("runtime.lab.*",),
        (*CONTRACTS, "runtime.client.*"),
        "the notebook API is a client: it reaches supervisor and services over gRPC",
    ),
    Rule(
        "runtime (facade)",
        ("runtime",),
        ("runtime.lab.*",),
        "`from runtime import Lab` is a lazy alias of runtime.lab.Lab",
    ),
    Rule(
        "runtime tools (cli, top)",
        ("runtime.cli", "runtime.top"),
        ("runtime", "runtime.lab.*", "runtime.client.*", *CONTRACTS, "runtime.cli", "runtime.top"),
        "terminal views over the Lab API, like the notebooks",
    ),
    Rule(
        "widgets",
        ("widgets.*",),
        ("runtime", "runtime.lab.*", "runtime.client.*", "runtime.errors.*", "runtime.v1.*"),
        "views over the Lab API (a typed Protocol); never the demo, services or processes",
    ),
    Rule(
        "calculator",
        ("calculator.*",),
        ("runtime", "runtime.*"),
        "the demo sits on top of the runtime; it is no notebook view, so no widgets",
    ),
    Rule(
        "notebooks",
        ("notebooks.*",),
        (
            "runtime",
            "runtime.lab.*",
            "runtime.client.*",
            "runtime.errors.*",
            "runtime.v1.*",
            "widgets.*",
            "calculator.*",
        ),
        "a lesson drives the lab through its public API; it embeds no agent, service or supervisor",
    ),
)


def matches(module: str, pattern: str) -> bool:
    """``a.b.*`` matches a.b and below; anything else matches that exact module."""
    if pattern.endswith(".*"):
        base = pattern[:-2]
        return module == base or module.startswith(base + ".")
    return module == pattern


def _specificity(pattern: str) -> tuple[int, int]:
    # An exact name beats a wildcard of the same depth (runtime.services.main vs runtime.services.*).
    return (pattern.removesuffix(".*").count(".") + 1, 0 if pattern.endswith(".*") else 1)


def layer_of(module: str) -> tuple[Rule, tuple[str, ...]] | None:
    """The rule for ``module`` and the patterns it may import (its own layer included)."""
    best: tuple[tuple[int, int], Rule] | None = None
    for rule in RULES:
        for pattern in rule.holds:
            if matches(module, pattern) and (best is None or _specificity(pattern) > best[0]):
                best = (_specificity(pattern), rule)
    if best is None:
        return None
    rule = best[1]
    own: tuple[str, ...] = rule.holds
    if rule.layer == "runtime.services.<name>":
        own = (".".join(module.split(".")[:3]) + ".*",)  # its own package only
    return rule, (*own, *rule.may_import)


@dataclass(frozen=True)
class Violation:
    path: str
    line: int  # the line in a module, the code cell (1-based) in a notebook
    module: str
    imported: str
    layer: str

    def __str__(self) -> str:
        if not self.imported:
            return (
                f"{self.path}: no rule covers module {self.module}; add it to RULES in {Path(__file__).name}"
            )
        found = layer_of(self.module)
        allowed = ", ".join(found[1]) if found else "?"
        where = (
            f"{self.path} cell {self.line}" if self.path.endswith(".ipynb") else f"{self.path}:{self.line}"
        )
        return f"{where}: {self.module} imports {self.imported}, but {self.layer} may import only {allowed}"


def modules_under(root: Path) -> dict[str, Path]:
    """Every importable module of the first-party packages below ``root`` (packages only:
    calculator/node and the like hold no __init__.py and are not walked)."""
    found: dict[str, Path] = {}

    def walk(pkg_dir: Path, name: str) -> None:
        found[name] = pkg_dir / "__init__.py"
        for child in sorted(pkg_dir.iterdir()):
            if child.is_dir() and (child / "__init__.py").is_file():
                walk(child, f"{name}.{child.name}")
            elif child.suffix == ".py" and child.name != "__init__.py":
                found[f"{name}.{child.stem}"] = child

    for top in FIRST_PARTY:
        if (root / top / "__init__.py").is_file():
            walk(root / top, top)
    for notebook in sorted((root / "notebooks").glob("*.ipynb")):
        found[f"notebooks.{notebook.stem}"] = notebook
    return found


def code_cells(notebook: Path) -> Iterator[tuple[int, str]]:
    """(cell number, Python source) of each code cell; IPython turns %magics and !shell into Python."""
    from IPython.core.inputtransformer2 import TransformerManager

    to_python = TransformerManager().transform_cell
    cells = json.loads(notebook.read_text())["cells"]
    for number, cell in enumerate((c for c in cells if c["cell_type"] == "code"), start=1):
        yield number, to_python("".join(cell["source"]))


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every first-party import in ``source``, wherever it sits."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield node.lineno, full if full in known else base


def check(root: Path) -> list[Violation]:
    """Every import below ``root`` that breaks ``RULES``, and every module no rule covers."""
    known = modules_under(root)
    names = set(known)
    found: list[Violation] = []
    for module, path in sorted(known.items()):
        rel = str(path.relative_to(root))
        placed = layer_of(module)
        if placed is None:
            found.append(Violation(rel, 0, module, "", ""))
            continue
        rule, allowed = placed
        if path.suffix == ".ipynb":
            seen = {(n, m) for n, src in code_cells(path) for _, m in imports_of(src, module, False, names)}
        else:
            seen = set(imports_of(path.read_text(), module, path.name == "__init__.py", names))
        for line, imported in sorted(seen):
            if imported.split(".")[0] not in FIRST_PARTY:
                continue
            if not any(matches(imported, p) for p in allowed):
                found.append(Violation(rel, line, module, imported, rule.layer))
    return found


# -- the checker, tested on a small synthetic tree -----------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for parent in path.relative_to(root).parents:
            if parent != Path("."):
                (root / parent / "__init__.py").touch()


SKELETON = {
    "runtime/v1/broker_pb2.py": "from runtime.v1 import common_pb2\n",
    "runtime/v1/common_pb2.py": "",
    "runtime/errors.py": "",
    "runtime/identity.py": "",
    "runtime/client/discovery.py": "from runtime.v1 import broker_pb2\nfrom runtime import errors\n",
    "runtime/agent/server.py": "from runtime.client import discovery\n",
    "runtime/services/main.py": "from runtime.agent import server\n",
    "runtime/services/broker/servicer.py": "from runtime.services.broker import registry\n"
    "from runtime.services.main import run\nfrom runtime.agent.server import Agent\n",
    "runtime/services/broker/registry.py": "",
    "runtime/services/health/servicer.py": "import runtime.v1.broker_pb2\n",
    "runtime/supervisor/daemon.py": "from runtime.identity import x\n",
    "runtime/lab/lab.py": "from runtime.client.discovery import find\n",
    "widgets/view.py": "from runtime.lab.lab import Lab\nimport ipywidgets\n",
    "calculator/client.py": "from runtime.client import discovery\nfrom runtime.agent import server\n",
}


def _violations(tmp_path: Path, extra: dict[str, str]) -> list[tuple[str, str]]:
    _write(tmp_path, {**SKELETON, **extra})
    return [(v.module, v.imported) for v in check(tmp_path)]


def test_checker_accepts_a_tree_that_keeps_the_rules(tmp_path: Path) -> None:
    assert _violations(tmp_path, {}) == []


@pytest.mark.parametrize(
    ("rel", "text", "module", "imported"),
    [
        # the notebook API reaching into what a service embeds
        (
            "runtime/lab/logs.py",
            "from runtime.agent.log_handler import install\n",
            "runtime.lab.logs",
            "runtime.agent.log_handler",
        ),
        # the runtime importing the demo, lazily inside a function
        (
            "runtime/lab/polyglot.py",
            "def f():\n    from calculator.toolchains import BY_LANGUAGE\n",
            "runtime.lab.polyglot",
            "calculator.toolchains",
        ),
        # one service importing another service's package
        (
            "runtime/services/health/link.py",
            "from runtime.services.broker.registry import R\n",
            "runtime.services.health.link",
            "runtime.services.broker.registry",
        ),
        # `from package import module` resolves to the module
        ("runtime/supervisor/x.py", "from runtime import lab\n", "runtime.supervisor.x", "runtime.lab"),
        # a relative import resolves to its absolute name
        (
            "runtime/supervisor/y.py",
            "from ..agent import server\n",
            "runtime.supervisor.y",
            "runtime.agent.server",
        ),
        # contracts stay at the bottom
        (
            "runtime/identity.py",
            "import runtime.client.discovery\n",
            "runtime.identity",
            "runtime.client.discovery",
        ),
        ("runtime/v1/bad_pb2.py", "from runtime import errors\n", "runtime.v1.bad_pb2", "runtime.errors"),
        # widgets use the Lab API, never the demo or the daemon
        ("widgets/chaos.py", "from calculator.client import C\n", "widgets.chaos", "calculator.client"),
        (
            "widgets/procs.py",
            "from runtime.supervisor import daemon\n",
            "widgets.procs",
            "runtime.supervisor.daemon",
        ),
        ("calculator/view.py", "import widgets.view\n", "calculator.view", "widgets.view"),
    ],
)
def test_checker_reports_a_broken_rule(
    tmp_path: Path, rel: str, text: str, module: str, imported: str
) -> None:
    assert (module, imported) in _violations(tmp_path, {rel: text})


def _notebook(*cells: str) -> str:
    code = [{"cell_type": "code", "source": text, "metadata": {}, "outputs": []} for text in cells]
    return json.dumps({"cells": [{"cell_type": "markdown", "source": "# x", "metadata": {}}, *code]})


def test_checker_reads_notebook_code_cells(tmp_path: Path) -> None:
    lesson = _notebook(
        "%matplotlib inline\nfrom runtime import Lab\nfrom widgets.view import V\n!ls",
        "from calculator.client import C\nimport runtime.lab.lab",
        "from runtime.supervisor.daemon import Daemon  # a lesson reaching into the daemon",
    )
    _write(tmp_path, {**SKELETON, "runtime/supervisor/daemon.py": "", "notebooks/01-x.ipynb": lesson})
    found = [v for v in check(tmp_path) if v.path.endswith(".ipynb")]
    assert [(v.line, v.imported) for v in found] == [(3, "runtime.supervisor.daemon")]
    assert str(found[0]).startswith("notebooks/01-x.ipynb cell 3: notebooks.01-x imports runtime.supervisor")


def test_checker_reports_a_module_no_rule_covers(tmp_path: Path) -> None:
    _write(tmp_path, {**SKELETON, "runtime/tools.py": ""})
    unplaced = [v for v in check(tmp_path) if not v.imported]
    assert [v.module for v in unplaced] == ["runtime.tools"]
    assert "no rule covers module runtime.tools" in str(unplaced[0])


def test_violation_message_says_what_is_allowed(tmp_path: Path) -> None:
    _write(tmp_path, {**SKELETON, "runtime/lab/logs.py": "import runtime.agent.server\n"})
    (message,) = [str(v) for v in check(tmp_path)]
    assert message.startswith("runtime/lab/logs.py:1: runtime.lab.logs imports runtime.agent.server")
    assert "runtime.lab may import only" in message and "runtime.client.*" in message


# -- the real tree ---------------------------------------------------------------------------------


def test_every_rule_holds_some_module() -> None:
    """A rule for a layer that has moved away would check nothing: keep the table honest."""
    modules = modules_under(ROOT)
    empty = [r.layer for r in RULES if not any(matches(m, p) for m in modules for p in r.holds)]
    assert not empty, f"rules that hold no module any more: {empty}"


def test_the_tree_keeps_the_import_rules() -> None:
    found = check(ROOT)
    assert not found, "import rules broken (see README 'Architecture'):\n" + "\n".join(map(str, found))


def _where_rows(readme: str) -> list[list[str]]:
    section = readme.split("### Where does X live", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    return [line.split("`")[1::2] for line in rows]


def test_readme_where_table_points_at_real_code() -> None:
    """Each path in README's "Where does X live" exists, and each name beside it is in one of them."""
    rows = _where_rows((ROOT / "README.md").read_text())
    assert len(rows) >= 10, "README lost its 'Where does X live' table"
    stale: list[str] = []
    for tokens in rows:
        paths = [ROOT / t for t in tokens if t.endswith(".py")]
        stale += [str(p.relative_to(ROOT)) for p in paths if not p.is_file()]
        texts = "\n".join(p.read_text() for p in paths if p.is_file())
        for name in tokens:
            if not name.endswith(".py") and any(part not in texts for part in name.split(".")):
                stale.append(f"{name} (not in {', '.join(t for t in tokens if t.endswith('.py'))})")
    assert not stale, f"README 'Where does X live' is stale: {stale}"
