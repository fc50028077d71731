"""lab.yaml validation: every error names the file, the field and what is allowed."""

from __future__ import annotations

import subprocess
import sys
import time
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
    assert cfg.services["health"].depends_on == {"broker": "started"}  # spawned beside the broker
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
            {"services": {"a": {"command": ["x"], "nice": -5}}},
            "services.a.nice",
            "-5 is not allowed; use an integer 0..19",
        ),
        (
            {"services": {"a": {"command": ["x"], "nice": 20}}},
            "services.a.nice",
            "20 is not allowed; use an integer 0..19",
        ),
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


def test_empty_file_and_no_services_fail_at_once(tmp_path: Path) -> None:
    empty = tmp_path / "lab.yaml"
    empty.write_text("# nothing here yet\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(empty)
    assert (info.value.path, info.value.field) == (str(empty), "")
    assert str(info.value).startswith(f"{empty}: the file is empty; list the lab's services")
    for data in ({}, {"services": None}, {"services": {}}, {"jobs": {"j": {"command": ["x"]}}}):
        err = _error(data)
        assert err.field == "services" and err.problem.startswith("no services listed")


def test_daemon_refuses_an_empty_lab_file_at_once(tmp_path: Path) -> None:
    """The daemon exits 2 naming the file, instead of serving a lab with nothing in it."""
    empty = tmp_path / "lab.yaml"
    empty.write_text("", encoding="utf-8")
    began = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.supervisor",
            "--lab-dir",
            str(tmp_path / "lab"),
            "--config",
            str(empty),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert f"supervisor: {empty}: the file is empty" in done.stderr
    assert time.monotonic() - began < 10  # an interpreter start, not a wait for a READY


@pytest.mark.parametrize("name", ["a b", "../x", "1st", "-x", "calc.v1", "", "x" * 64, "ä"])
@pytest.mark.parametrize("section", ["services", "jobs"])
def test_bad_names_are_refused_and_quoted(section: str, name: str) -> None:
    data: dict = {"services": {"ok": {"command": ["x"]}}}
    data.setdefault(section, {})[name] = {"command": ["x"]}
    err = _error(data)
    kind = section[:-1]
    assert err.field == f"{section}.{name}"
    assert err.problem == (
        f"{name!r} is not a valid {kind} name; "
        "use letters, digits, - and _, starting with a letter, at most 63 characters"
    )


def test_good_names_and_a_huge_bad_one() -> None:
    cfg = _cfg({"a": {"command": ["x"]}, "calculator-ts_2": {"command": ["x"]}, "x" * 63: {"command": ["x"]}})
    assert list(cfg.services) == ["a", "calculator-ts_2", "x" * 63]
    assert cfg.services["calculator-ts_2"].name == "calculator-ts_2"
    err = _error({"services": {"../" * 50_000: {"command": ["x"]}}})
    assert len(str(err)) < 500  # the name is quoted cut, the field path too
    assert "(150000 characters) is not a valid service name" in err.problem


def test_name_comes_from_the_key_only() -> None:
    err = _error({"services": {"a": {"command": ["x"], "name": "b"}}})
    assert err.field == "services.a.name"
    assert err.problem.startswith("unknown key; allowed keys: backoff_factor, ")
    assert "name" not in err.problem.split("allowed keys: ")[1].split(", ")


def test_bad_value_is_quoted_at_most_200_characters() -> None:
    err = _error({"services": {"a": {"command": ["x"], "restart": "y" * 100_000}}})
    assert err.field == "services.a.restart"
    assert err.problem.endswith(
        "... (100000 characters) is not allowed; use one of always, on-failure, never"
    )
    assert len(err.problem) < 300


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ("x", "services.a", "must be a mapping, got str 'x'"),
        ({"command": ["x"], "start_limit": 5}, "services.a.start_limit", "must be a mapping, got int 5"),
        (
            {"command": ["x"], "start_limit": {"starts": 2, "within": 1}},
            "services.a.start_limit.within",
            "unknown key; allowed keys: starts, within_s",
        ),
        (
            {"command": ["x"], "requires": ["node", 3]},
            "services.a.requires.1",
            "3 is not allowed; use a list",
        ),
        (
            {"command": ["x"], "env": {"A": [1]}},
            "services.a.env.A",
            "[1] is not allowed; use a string or number",
        ),
        (
            {"command": ["x"], "instances": "2"},
            "services.a.instances",
            "'2' is not allowed; use an integer >= 0",
        ),
        (
            {"command": ["x"], "ready_timeout_s": 0},
            "services.a.ready_timeout_s",
            "0 is not allowed; use a number of seconds > 0",
        ),
        (
            {"command": ["x"], "stop_grace_s": True},
            "services.a.stop_grace_s",
            "True is not allowed; use a number",
        ),
    ],
)
def test_more_fields_named_with_what_is_allowed(body: object, field: str, problem: str) -> None:
    err = _error({"services": {"a": body}})
    assert err.field == field
    assert err.problem.startswith(problem)


def test_every_setting_says_what_is_allowed() -> None:
    """A field without a description would give messages without "use ..."; new sections too."""
    from runtime.supervisor.config import KEY_FIELDS, JobSpec, LabFile, ServiceSpec, StartLimit

    for model in (LabFile, ServiceSpec, JobSpec, StartLimit):
        for name, info in model.model_fields.items():
            assert name in KEY_FIELDS or info.description, f"{model.__name__}.{name} has no description"


def test_numbers_become_floats_and_specs_are_frozen() -> None:
    spec = _cfg({"a": {"command": ["sleep", 5], "restart_delay_s": 1}}).services["a"]
    assert spec.command == ("sleep", "5") and spec.restart_delay_s == 1.0
    with pytest.raises(ValueError):
        spec.restart = "never"  # type: ignore[misc]


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
    assert err.field == "services.c.depends_on"
    assert err.problem == "dependency cycle a -> b -> c -> a; remove one of these depends_on entries"


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
