"""lab.yaml validation: every error names the file, the field and what is allowed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runtime.errors import ConfigError
from runtime.supervisor.config import load_config, missing_requirement, parse_config, resolve_command

ROOT = Path(__file__).resolve().parent.parent


def _cfg(services: dict, **top: object):
    return parse_config({"services": services, **top}, "/x/lab.yaml")


def _error(data: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "/x/lab.yaml")
    return info.value


def test_default_lab_yaml_is_valid() -> None:
    cfg = load_config(ROOT / "lab.yaml")
    assert cfg.project_root == str(ROOT)
    assert cfg.services["broker"].sticky_port is True
    assert cfg.services["calculator"].instances == 2
    assert cfg.services["health"].depends_on == {"broker": "ready"}
    assert cfg.start_order()[0] == "broker"
    assert "client-rust" in cfg.jobs


def test_defaults_apply() -> None:
    spec = _cfg({"a": {"command": ["x"]}}).services["a"]
    assert (spec.restart, spec.instances, spec.max_instances, spec.restart_delay_s) == ("always", 1, 8, 0.5)
    assert (spec.start_limit.starts, spec.start_limit.within_s) == (5, 30.0)
    assert spec.health_check is True and spec.sticky_port is False


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        ({"servics": {}}, "servics", "unknown key; allowed keys: jobs, linger_s, services"),
        ({"services": {"a": {"command": ["x"], "restrat": "always"}}}, "services.a.restrat", "unknown key"),
        (
            {"services": {"a": {"command": ["x"], "restart": "sometimes"}}},
            "services.a.restart",
            "always, on-failure, never",
        ),
        ({"services": {"a": {"command": ["x"], "instances": "two"}}}, "services.a.instances", "an integer"),
        ({"services": {"a": {"command": ["x"], "instances": True}}}, "services.a.instances", "an integer"),
        (
            {"services": {"a": {"command": ["x"], "health_check": "yes"}}},
            "services.a.health_check",
            "true or false",
        ),
        ({"services": {"a": {"command": "x y"}}}, "services.a.command", "a list of strings"),
        ({"services": {"a": {"command": []}}}, "services.a.command", "non-empty list"),
        ({"services": {"a": {}}}, "services.a.command", "missing"),
        (
            {"services": {"a": {"command": ["x"], "instances": 9}}},
            "services.a.instances",
            "above max_instances",
        ),
        ({"services": {"a": {"command": ["x"], "backoff_factor": 0.5}}}, "services.a.backoff_factor", ">= 1"),
        (
            {"services": {"a": {"command": ["x"], "start_limit": {"starts": 0}}}},
            "services.a.start_limit.starts",
            "integer >= 1",
        ),
        (
            {"services": {"a": {"command": ["x"], "depends_on": {"b": "ready"}}}},
            "services.a.depends_on.b",
            "unknown service 'b'; known services: a",
        ),
        (
            {"services": {"a": {"command": ["x"], "depends_on": {"b": "up"}}, "b": {"command": ["x"]}}},
            "services.a.depends_on.b",
            "started, ready, healthy",
        ),
        ({"linger_s": -1, "services": {}}, "linger_s", ">= 0"),
        (
            {"jobs": {"j": {"command": ["x"], "restart": "always"}}},
            "jobs.j.restart",
            "allowed keys: command, env",
        ),
    ],
)
def test_errors_name_field_and_allowed_values(data: dict, field: str, text: str) -> None:
    err = _error(data)
    assert err.path == "/x/lab.yaml"
    assert err.field == field
    assert text in err.problem
    assert str(err).startswith(f"/x/lab.yaml: {field}: ")


def test_dependency_cycle_is_named() -> None:
    err = _error(
        {
            "services": {
                "a": {"command": ["x"], "depends_on": {"b": "ready"}},
                "b": {"command": ["x"], "depends_on": {"c": "started"}},
                "c": {"command": ["x"], "depends_on": {"a": "healthy"}},
            }
        }
    )
    assert "dependency cycle a -> b -> c -> a" in err.problem


def test_self_dependency_is_a_cycle() -> None:
    err = _error({"services": {"a": {"command": ["x"], "depends_on": {"a": "ready"}}}})
    assert "dependency cycle a -> a" in err.problem


def test_start_order_puts_dependencies_first() -> None:
    cfg = _cfg(
        {
            "web": {"command": ["x"], "depends_on": {"db": "ready", "cache": "started"}},
            "cache": {"command": ["x"], "depends_on": {"db": "healthy"}},
            "db": {"command": ["x"]},
        }
    )
    assert cfg.start_order() == ["db", "cache", "web"]
    assert cfg.start_levels() == [["db"], ["cache"], ["web"]]
    # The default lab: the broker first, then everything else at once (all depend on it).
    default = load_config(ROOT / "lab.yaml")
    levels = default.start_levels()
    assert levels[0] == ["broker"] and len(levels) == 2
    assert sorted(levels[1]) == sorted(set(default.services) - {"broker"})
    assert {"health", "logger", "calculator", "calculator-ts"} <= set(levels[1])


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "lab.yaml"
    bad.write_text("services: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_env_values_become_strings() -> None:
    spec = _cfg({"a": {"command": ["x"], "env": {"N": 3, "B": True, "S": "s"}}}).services["a"]
    assert spec.env == {"N": "3", "B": "true", "S": "s"}


def test_resolve_command_and_requires(tmp_path: Path) -> None:
    assert resolve_command(("python", "-m", "x"), str(tmp_path))[0] == sys.executable
    assert resolve_command(("bin/tool", "a"), str(tmp_path)) == [str(tmp_path / "bin/tool"), "a"]
    assert resolve_command(("sh", "a/b"), str(tmp_path)) == ["sh", "a/b"]
    (tmp_path / "built").mkdir()
    (tmp_path / "built" / "server.js").write_text("", encoding="utf-8")
    assert missing_requirement(("sh", "built/server.js"), str(tmp_path)) == ""
    assert missing_requirement(("sh", "no-such-tool-xyz"), str(tmp_path)) == "no-such-tool-xyz"
    assert missing_requirement(("dist/missing.js",), str(tmp_path)) == "dist/missing.js"
