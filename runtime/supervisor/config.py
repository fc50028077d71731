"""lab.yaml parsed and validated into dataclasses (the schema is the header comment of lab.yaml).

Every problem raises :class:`runtime.errors.ConfigError` naming the file, the dotted field and
what is allowed, e.g. ``lab.yaml: services.calculator.restart: 'sometimes' is not allowed; use
one of always, on-failure, never``.

Example:
    >>> cfg = load_config("lab.yaml")          # doctest: +SKIP
    >>> cfg.services["broker"].restart          # doctest: +SKIP
    'always'
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runtime.errors import ConfigError
from runtime.liveness import LivenessSettings

RESTART_CHOICES = ("always", "on-failure", "never")
DEPEND_CONDITIONS = ("started", "ready", "healthy")
DEFAULT_LINGER_S = 30.0
TOP_KEYS = ("linger_s", "services", "jobs")
JOB_KEYS = ("command", "env", "language", "requires")


@dataclass(frozen=True)
class StartLimit:
    """At most ``starts`` starts within ``within_s`` seconds, else FATAL."""

    starts: int = 5
    within_s: float = 30.0


@dataclass(frozen=True)
class ServiceSpec:
    """One long-running service of the lab (``services.<name>``)."""

    name: str
    command: tuple[str, ...]
    instances: int = 1
    max_instances: int = 8
    restart: str = "always"
    restart_delay_s: float = 0.5
    backoff_factor: float = 2.0
    backoff_max_s: float = 10.0
    start_limit: StartLimit = field(default_factory=StartLimit)
    ready_timeout_s: float = 15.0
    health_check: bool = True
    stop_grace_s: float = 3.0
    sticky_port: bool = False
    depends_on: dict[str, str] = field(default_factory=dict)
    language: str = "python"
    env: dict[str, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    liveness: LivenessSettings = field(default_factory=LivenessSettings)


@dataclass(frozen=True)
class JobSpec:
    """A one-shot command run on request (``jobs.<name>``)."""

    name: str
    command: tuple[str, ...]
    language: str = "python"
    env: dict[str, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabConfig:
    """The whole lab: where it came from, how long it lingers, its services and jobs."""

    path: str
    project_root: str
    linger_s: float = DEFAULT_LINGER_S
    services: dict[str, ServiceSpec] = field(default_factory=dict)
    jobs: dict[str, JobSpec] = field(default_factory=dict)

    def start_order(self) -> list[str]:
        """Service names with every dependency before its dependents (file order otherwise)."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for dep in self.services[name].depends_on:
                visit(dep)
            order.append(name)

        for name in self.services:
            visit(name)
        return order

    def start_levels(self) -> list[list[str]]:
        """Services grouped by dependency depth: level 0 depends on nothing, level n on < n."""
        depth: dict[str, int] = {}
        for name in self.start_order():
            deps = self.services[name].depends_on
            depth[name] = 1 + max((depth[d] for d in deps), default=-1)
        levels: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for name in self.start_order():
            levels[depth[name]].append(name)
        return levels


# Field name -> (python types accepted, description for the message). bool is checked apart,
# because YAML `true` is an int to isinstance().
_SERVICE_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "command": ((list,), "a list of strings, e.g. [python, -m, mypkg]"),
    "instances": ((int,), "an integer >= 0"),
    "max_instances": ((int,), "an integer >= 1"),
    "restart": ((str,), "one of " + ", ".join(RESTART_CHOICES)),
    "restart_delay_s": ((int, float), "a number of seconds >= 0"),
    "backoff_factor": ((int, float), "a number >= 1"),
    "backoff_max_s": ((int, float), "a number of seconds >= 0"),
    "start_limit": ((dict,), "a mapping {starts: N, within_s: S}"),
    "ready_timeout_s": ((int, float), "a number of seconds > 0"),
    "health_check": ((bool,), "true or false"),
    "stop_grace_s": ((int, float), "a number of seconds >= 0"),
    "sticky_port": ((bool,), "true or false"),
    "depends_on": ((dict,), "a mapping {service: started|ready|healthy}"),
    "language": ((str,), "a string such as python, typescript, rust, cpp"),
    "env": ((dict,), "a mapping {NAME: value}"),
    "requires": ((list,), "a list of commands or paths"),
    "liveness": ((dict,), "a mapping {period_s: S, timeout_s: S, failures: N, restart_after_s: S}"),
}


def load_config(path: str | os.PathLike[str]) -> LabConfig:
    """Read and validate a lab.yaml file.

    Raises:
        ConfigError: the file is missing, not YAML, or breaks the schema.
    """
    p = Path(path).resolve()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            str(p), "", f"cannot read the file ({exc.strerror}); pass an existing lab.yaml"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(p), "", f"not valid YAML: {exc}") from exc
    return parse_config(data, str(p))


def parse_config(data: Any, path: str) -> LabConfig:
    """Validate already-parsed YAML ``data`` from file ``path``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, "", "the top level must be a mapping with services:, jobs:, linger_s:")
    _no_unknown(path, "", data, TOP_KEYS)
    linger = data.get("linger_s", DEFAULT_LINGER_S)
    if not _is_number(linger) or linger < 0:
        raise ConfigError(path, "linger_s", f"{linger!r} is not allowed; use a number of seconds >= 0")
    services_raw = _mapping(path, "services", data.get("services") or {})
    jobs_raw = _mapping(path, "jobs", data.get("jobs") or {})
    services = {str(n): _service(path, str(n), body) for n, body in services_raw.items()}
    jobs = {str(n): _job(path, str(n), body) for n, body in jobs_raw.items()}
    for name, spec in services.items():
        for dep, cond in spec.depends_on.items():
            where = f"services.{name}.depends_on.{dep}"
            if dep not in services:
                known = ", ".join(services) or "(none)"
                raise ConfigError(path, where, f"unknown service {dep!r}; known services: {known}")
            if cond not in DEPEND_CONDITIONS:
                raise ConfigError(
                    path,
                    where,
                    f"condition {cond!r} is not allowed; use one of {', '.join(DEPEND_CONDITIONS)}",
                )
    _check_cycles(path, services)
    return LabConfig(
        path=path,
        project_root=str(Path(path).parent),
        linger_s=float(linger),
        services=services,
        jobs=jobs,
    )


def resolve_command(command: tuple[str, ...], project_root: str) -> list[str]:
    """argv to execute: ``python`` is this interpreter, a relative program path is under the root."""
    argv = list(command)
    if argv[0] == "python":
        argv[0] = sys.executable
    elif "/" in argv[0] and not os.path.isabs(argv[0]):
        argv[0] = os.path.join(project_root, argv[0])
    return argv


def missing_requirement(requires: tuple[str, ...], project_root: str) -> str:
    """The first entry of ``requires`` that is neither on PATH nor under the project root ('' if none)."""
    for item in requires:
        if item == "python":
            continue
        if "/" not in item and shutil.which(item):
            continue
        if os.path.exists(os.path.join(project_root, item)):
            continue
        return item
    return ""


def _service(path: str, name: str, body: Any) -> ServiceSpec:
    where = f"services.{name}"
    body = _mapping(path, where, body)
    _no_unknown(path, where, body, tuple(_SERVICE_FIELDS))
    for key, value in body.items():
        _check_type(path, f"{where}.{key}", value, *_SERVICE_FIELDS[key])
    if "command" not in body:
        raise ConfigError(path, f"{where}.command", "missing; give the argv list, e.g. [python, -m, mypkg]")
    kw: dict[str, Any] = {
        k: v for k, v in body.items() if k not in ("command", "start_limit", "env", "requires", "liveness")
    }
    kw["command"] = _argv(path, f"{where}.command", body["command"])
    kw["env"] = _env(path, f"{where}.env", body.get("env") or {})
    kw["requires"] = _strings(path, f"{where}.requires", body.get("requires") or [])
    kw["depends_on"] = {str(k): str(v) for k, v in (body.get("depends_on") or {}).items()}
    if "start_limit" in body:
        kw["start_limit"] = _start_limit(path, f"{where}.start_limit", body["start_limit"])
    if "liveness" in body:
        kw["liveness"] = _liveness(path, f"{where}.liveness", body["liveness"])
    spec = ServiceSpec(name=name, **kw)
    if spec.restart not in RESTART_CHOICES:
        raise ConfigError(
            path,
            f"{where}.restart",
            f"{spec.restart!r} is not allowed; use one of {', '.join(RESTART_CHOICES)}",
        )
    _at_least(path, f"{where}.max_instances", spec.max_instances, 1)
    _at_least(path, f"{where}.instances", spec.instances, 0)
    if spec.instances > spec.max_instances:
        raise ConfigError(
            path,
            f"{where}.instances",
            f"{spec.instances} is above max_instances ({spec.max_instances}); raise max_instances",
        )
    for key in ("restart_delay_s", "backoff_max_s", "stop_grace_s"):
        _at_least(path, f"{where}.{key}", getattr(spec, key), 0)
    _at_least(path, f"{where}.backoff_factor", spec.backoff_factor, 1)
    if spec.ready_timeout_s <= 0:
        raise ConfigError(
            path, f"{where}.ready_timeout_s", f"{spec.ready_timeout_s} is not allowed; use a number > 0"
        )
    return spec


def _job(path: str, name: str, body: Any) -> JobSpec:
    where = f"jobs.{name}"
    body = _mapping(path, where, body)
    _no_unknown(path, where, body, JOB_KEYS)
    for key, value in body.items():
        _check_type(path, f"{where}.{key}", value, *_SERVICE_FIELDS[key])
    if "command" not in body:
        raise ConfigError(path, f"{where}.command", "missing; give the argv list, e.g. [python, -m, mypkg]")
    return JobSpec(
        name=name,
        command=_argv(path, f"{where}.command", body["command"]),
        language=body.get("language", "python"),
        env=_env(path, f"{where}.env", body.get("env") or {}),
        requires=_strings(path, f"{where}.requires", body.get("requires") or []),
    )


def _start_limit(path: str, where: str, body: dict[str, Any]) -> StartLimit:
    _no_unknown(path, where, body, ("starts", "within_s"))
    starts = body.get("starts", StartLimit.starts)
    within = body.get("within_s", StartLimit.within_s)
    if not isinstance(starts, int) or isinstance(starts, bool) or starts < 1:
        raise ConfigError(path, f"{where}.starts", f"{starts!r} is not allowed; use an integer >= 1")
    if not _is_number(within) or within <= 0:
        raise ConfigError(
            path, f"{where}.within_s", f"{within!r} is not allowed; use a number of seconds > 0"
        )
    return StartLimit(starts=starts, within_s=float(within))


def _liveness(path: str, where: str, body: dict[str, Any]) -> LivenessSettings:
    _no_unknown(path, where, body, ("period_s", "timeout_s", "failures", "restart_after_s"))
    d = LivenessSettings()
    failures = body.get("failures", d.failures)
    if not isinstance(failures, int) or isinstance(failures, bool) or failures < 1:
        raise ConfigError(path, f"{where}.failures", f"{failures!r} is not allowed; use an integer >= 1")
    nums = {k: body.get(k, getattr(d, k)) for k in ("period_s", "timeout_s", "restart_after_s")}
    for key, value in nums.items():
        low = 0.0 if key == "restart_after_s" else 1e-3
        if not _is_number(value) or value < low:
            what = ">= 0 (0: never restart)" if key == "restart_after_s" else "> 0"
            raise ConfigError(
                path, f"{where}.{key}", f"{value!r} is not allowed; use a number of seconds {what}"
            )
    if nums["timeout_s"] > nums["period_s"]:
        raise ConfigError(
            path,
            f"{where}.timeout_s",
            f"{nums['timeout_s']} is above period_s ({nums['period_s']}); a probe must end before the next one",
        )
    return LivenessSettings(
        period_s=float(nums["period_s"]),
        timeout_s=float(nums["timeout_s"]),
        failures=failures,
        restart_after_s=float(nums["restart_after_s"]),
    )


def _check_cycles(path: str, services: dict[str, ServiceSpec]) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = trail[trail.index(name) :] + [name]
            raise ConfigError(
                path,
                f"services.{trail[-1]}.depends_on",
                f"dependency cycle {' -> '.join(cycle)}; remove one of these depends_on entries",
            )
        state[name] = 1
        for dep in services[name].depends_on:
            visit(dep, trail + [name])
        state[name] = 2

    for name in services:
        visit(name, [])


def _no_unknown(path: str, where: str, body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in body:
        if key not in allowed:
            field_name = f"{where}.{key}" if where else str(key)
            raise ConfigError(path, field_name, f"unknown key; allowed keys: {', '.join(sorted(allowed))}")


def _mapping(path: str, where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(path, where, f"must be a mapping, got {type(value).__name__} {value!r}")
    return value


def _check_type(path: str, where: str, value: Any, types: tuple[type, ...], what: str) -> None:
    is_bool = isinstance(value, bool)
    ok = isinstance(value, types) and (bool in types or not is_bool)
    if not ok:
        raise ConfigError(path, where, f"{value!r} is not allowed; use {what}")


def _argv(path: str, where: str, value: list[Any]) -> tuple[str, ...]:
    if not value or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in value):
        raise ConfigError(path, where, f"{value!r} is not allowed; use a non-empty list of strings")
    return tuple(str(a) for a in value)


def _strings(path: str, where: str, value: list[Any]) -> tuple[str, ...]:
    if not all(isinstance(a, str) for a in value):
        raise ConfigError(path, where, f"{value!r} is not allowed; use a list of strings")
    return tuple(value)


def _env(path: str, where: str, value: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or isinstance(val, (dict, list)) or val is None:
            raise ConfigError(path, f"{where}.{key}", f"{val!r} is not allowed; use a string or number")
        out[key] = str(val).lower() if isinstance(val, bool) else str(val)
    return out


def _at_least(path: str, where: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(path, where, f"{value} is not allowed; use a number >= {low}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
