"""runtime.identity is the one home of the cross-process contract; the settings read it once.

Pure tests: the READY line, the gRPC names against the generated descriptors, a source scan that
fails when a module spells a ``LAB_*`` variable, a lab-dir file name or a ``runtime.v1`` service
name itself, and each process kind's settings dataclass.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from runtime import identity
from runtime.agent.settings import AgentSettings
from runtime.services.health.settings import HealthSettings
from runtime.services.load.settings import LoadSettings
from runtime.services.logger.settings import LoggerSettings
from runtime.v1 import (
    broker_pb2,
    chaos_pb2,
    config_pb2,
    health_pb2,
    load_pb2,
    logger_pb2,
    state_pb2,
    supervisor_pb2,
)

ROOT = Path(__file__).resolve().parent.parent
GENERATED = (broker_pb2, chaos_pb2, config_pb2, health_pb2, load_pb2, logger_pb2, state_pb2, supervisor_pb2)

# What only runtime/identity.py may spell (docstrings may mention anything).
CONTRACT_TEXT = re.compile(
    r"\bLAB_[A-Z][A-Z0-9_]*\b"
    r"|\b(?:supervisor\.(?:json|lock|log)|(?:logs|config|state)\.sqlite)\b"
    r"|\bruntime\.v1\.[A-Z]\w*Service\b"
)
# The calculator's service name is the calculator's own contract (calculator/contract.py); the
# runtime may name it as an example, the calculator's other modules import it.
CALCULATOR_TEXT = re.compile(r"\bcalculator\.v1\.[A-Z]\w*Service\b")
CONTRACT_HOMES = {"runtime/identity.py", "calculator/contract.py"}


def test_ready_line_round_trip():
    assert identity.parse_ready_line(identity.ready_line(50051) + "\n") == 50051
    assert identity.parse_ready_line("READY port=0") is None  # not a port anyone can call
    assert identity.parse_ready_line("READY port=x") is None
    assert identity.parse_ready_line("listening on 50051") is None
    # A service that also speaks Connect names its HTTP port second; readers of the port alone
    # are not confused by it.
    line = identity.ready_line(50051, 8080)
    assert line == "READY port=50051 http=8080"
    assert (identity.parse_ready_line(line), identity.parse_ready_http(line)) == (50051, 8080)
    assert identity.parse_ready_http(identity.ready_line(50051)) is None
    assert identity.parse_ready_http("READY port=1 http=99999") is None


def test_every_generated_service_has_its_name_in_identity():
    names = {value for key, value in vars(identity).items() if key.endswith("_GRPC_SERVICE")}
    generated = {s.full_name for module in GENERATED for s in module.DESCRIPTOR.services_by_name.values()}
    assert names == generated, f"missing in identity: {generated - names}; unknown: {names - generated}"


def test_exit_codes_are_distinct():
    codes = {key: value for key, value in vars(identity).items() if key.startswith("EXIT_")}
    assert len(set(codes.values())) == len(codes), codes
    assert codes["EXIT_INTERRUPTED"] == 128 + 2  # what a shell reports for SIGINT


def test_broker_address_from_env():
    assert identity.broker_address_from_env({identity.ENV_BROKER_ADDR: "127.0.0.1:5"}) == "127.0.0.1:5"
    assert identity.broker_address_from_env({}) == ""


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _sources() -> list[Path]:
    paths = [
        *(ROOT / "runtime").rglob("*.py"),
        *(ROOT / "calculator").glob("*.py"),
        *(ROOT / "widgets").glob("*.py"),
    ]
    return sorted(
        p for p in paths if not p.relative_to(ROOT).as_posix().startswith(("runtime/v1/", "calculator/v1/"))
    )


def test_only_identity_spells_the_contract():
    offenders = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        if rel in CONTRACT_HOMES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                not isinstance(node, ast.Constant)
                or not isinstance(node.value, str)
                or id(node) in docstrings
            ):
                continue
            hits = CONTRACT_TEXT.findall(node.value)
            if rel.startswith("calculator/"):
                hits += CALCULATOR_TEXT.findall(node.value)
            offenders += [f"{rel}:{node.lineno}: {hit}" for hit in hits]
    assert not offenders, "use the names in runtime/identity.py (or calculator/contract.py):\n" + "\n".join(
        offenders
    )


def test_the_scan_sees_a_spelled_name():
    # The guard above must be able to fail: the same scan finds a literal in a module.
    tree = ast.parse('"""doc: LAB_DIR is fine here."""\nX = "LAB_DIR"\nY = f"see {1} supervisor.json"\n')
    docstrings = _docstrings(tree)
    hits = [
        hit
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        for hit in CONTRACT_TEXT.findall(node.value)
    ]
    assert hits == ["LAB_DIR", "supervisor.json"]


# -- settings: one dataclass per process kind, read once from the environment ---------------


@pytest.mark.parametrize(
    ("settings", "env", "field", "value"),
    [
        (LoggerSettings, {identity.ENV_LOG_RING: "50"}, "ring_size", 50),
        (LoggerSettings, {identity.ENV_LOG_RETENTION: "7"}, "retention", 7),
        (LoadSettings, {identity.ENV_LOAD_MAX_RPS: "100"}, "max_rps", 100),
        (LoadSettings, {identity.ENV_LOAD_MAX_ACTIVE_TESTS: "1"}, "max_active_tests", 1),
        (AgentSettings, {identity.ENV_DEGRADED_P99_MS: "12.5"}, "degraded_p99_ms", 12.5),
        (AgentSettings, {identity.ENV_DEGRADED_IN_FLIGHT: "8"}, "degraded_in_flight", 8),
        (HealthSettings, {identity.ENV_HEALTH_PREFIX + "PROBE_INTERVAL_S": "0.2"}, "probe_interval_s", 0.2),
    ],
)
def test_settings_read_their_variables(settings, env, field, value):
    assert getattr(settings.from_env(env), field) == value
    assert settings.from_env({}) == settings()  # unset: the defaults


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        (LoggerSettings, identity.ENV_LOG_RING),
        (LoadSettings, identity.ENV_LOAD_MAX_TIMEOUT_MS),
        (AgentSettings, identity.ENV_RECOVER_HOLD_S),
    ],
)
def test_a_bad_value_names_its_variable(settings, key):
    with pytest.raises(ValueError, match=f"{key}='soon' is not a"):
        settings.from_env({key: "soon"})


def test_agent_settings_build_the_degraded_rule():
    rule = AgentSettings.from_env({identity.ENV_DEGRADED_IN_FLIGHT: "3"}).degraded_rule()
    assert (rule.in_flight_max, rule.p99_ms) == (3, AgentSettings().degraded_p99_ms)
