"""lab.yaml parsed and validated with pydantic, one model per section of the file.

    LabFile           the file itself: linger_s, store (``store_env``), services, jobs
    ├── ServiceSpec   services.<name>     (start_limit: StartLimit)
    └── JobSpec       jobs.<name>
    LabConfig         a LabFile plus where it came from, and the start order (graphlib)

Every problem raises :class:`runtime.errors.ConfigError` naming the file, the dotted field and
what is allowed, e.g. ``lab.yaml: services.calculator.restart: 'sometimes' is not allowed; use
one of always, on-failure, never``. The "what is allowed" text is each field's ``description``;
``runtime.supervisor.config_errors`` turns pydantic's errors into these messages.

Adding a setting: give its section model a field with a default and a ``description`` saying what
a learner may write; a new nested section (``liveness:`` say) is a new ``Section`` subclass used as
a field type. Nothing else needs to change for its errors to read like the others.

Example:
    >>> cfg = load_config("lab.yaml")          # doctest: +SKIP
    >>> cfg.services["broker"].restart          # doctest: +SKIP
    'always'
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)

from runtime.client.store_choice import parse_store
from runtime.errors import NAME_MAX, NAME_PATTERN, NAME_RULE, ConfigError
from runtime.identity import ENV_STORE
from runtime.liveness import DEFAULT_FAILURES, DEFAULT_PERIOD_S, DEFAULT_RESTART_AFTER_S, DEFAULT_TIMEOUT_S
from runtime.supervisor.config_errors import KEY_FIELDS, config_error, problem, quote

RESTART_CHOICES = ("always", "on-failure", "never")
DEPEND_CONDITIONS = ("started", "ready", "healthy")
DEFAULT_LINGER_S = 30.0
EXAMPLE_SERVICE = "services: {calculator: {command: [python, -m, calculator.server]}}"


def check_name(name: str, kind: str) -> str:
    """``name`` if it is a valid service or job name (``kind``), else a ConfigError-ready problem.

    >>> check_name("calculator-ts", "service")
    'calculator-ts'
    """
    if len(name) > NAME_MAX or not NAME_PATTERN.fullmatch(name):
        raise problem(f"{quote(name)} is not a valid {kind} name; {NAME_RULE}")
    return name


def _argv(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise problem(f"{quote(value)} is not allowed; use a list of strings, e.g. [python, -m, mypkg]")
    if not value or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in value):
        raise problem(f"{quote(value)} is not allowed; use a non-empty list of strings")
    return tuple(str(a) for a in value)


def _env_value(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise problem(f"{quote(value)} is not allowed; use a string or number")
    return str(value).lower() if isinstance(value, bool) else str(value)


def _condition(value: str) -> str:
    if value not in DEPEND_CONDITIONS:
        raise problem(f"condition {quote(value)} is not allowed; use one of {', '.join(DEPEND_CONDITIONS)}")
    return value


# Field types shared by the sections. Strict: YAML `true` is not the integer 1, "2" is not 2.
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]
StrictStr = Annotated[str, Strict()]
Number = Annotated[float, Strict()]  # strict float still takes an int (2 -> 2.0), never a bool
ServiceName = Annotated[StrictStr, AfterValidator(lambda n: check_name(n, "service"))]
JobName = Annotated[StrictStr, AfterValidator(lambda n: check_name(n, "job"))]
Command = Annotated[
    tuple[str, ...],
    BeforeValidator(_argv),
    Field(description="a list of strings, e.g. [python, -m, mypkg]"),
]
Env = Annotated[
    dict[StrictStr, Annotated[str, BeforeValidator(_env_value)]],
    Field(description="a mapping {NAME: value}"),
]
Language = Annotated[StrictStr, Field(description="a string such as python, typescript, rust, cpp")]
Requires = Annotated[tuple[StrictStr, ...], Field(description="a list of commands or paths")]


class Section(BaseModel):
    """One mapping of lab.yaml: unknown keys are errors, parsed values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StartLimit(Section):
    """At most ``starts`` starts within ``within_s`` seconds, else FATAL."""

    starts: StrictInt = Field(default=5, ge=1, description="an integer >= 1")
    within_s: Number = Field(default=30.0, gt=0, description="a number of seconds > 0")


class Liveness(Section):
    """``services.<name>.liveness``: how every instance is probed (see runtime.liveness)."""

    period_s: Number = Field(default=DEFAULT_PERIOD_S, gt=0, description="a number of seconds > 0")
    timeout_s: Number = Field(
        default=DEFAULT_TIMEOUT_S, gt=0, description="a number of seconds > 0, at most period_s"
    )
    failures: StrictInt = Field(default=DEFAULT_FAILURES, ge=1, description="an integer >= 1")
    restart_after_s: Number = Field(
        default=DEFAULT_RESTART_AFTER_S, ge=0, description="a number of seconds >= 0 (0: never restart)"
    )

    @model_validator(mode="after")
    def _timeout_within_period(self) -> Liveness:
        if self.timeout_s > self.period_s:
            raise problem(
                f"{self.timeout_s:g} is above period_s ({self.period_s:g}); a probe must end before the next",
                "timeout_s",
            )
        return self


class ServiceSpec(Section):
    """One long-running service of the lab (``services.<name>``; the name is its key)."""

    name: ServiceName
    command: Command
    instances: StrictInt = Field(default=1, ge=0, description="an integer >= 0")
    max_instances: StrictInt = Field(default=8, ge=1, description="an integer >= 1")
    restart: Literal["always", "on-failure", "never"] = Field(
        default="always", description="one of " + ", ".join(RESTART_CHOICES)
    )
    restart_delay_s: Number = Field(default=0.5, ge=0, description="a number of seconds >= 0")
    backoff_factor: Number = Field(default=2.0, ge=1, description="a number >= 1")
    backoff_max_s: Number = Field(default=10.0, ge=0, description="a number of seconds >= 0")
    start_limit: StartLimit = Field(default=StartLimit(), description="a mapping {starts: N, within_s: S}")
    ready_timeout_s: Number = Field(default=15.0, gt=0, description="a number of seconds > 0")
    health_check: StrictBool = Field(default=True, description="true or false")
    stop_grace_s: Number = Field(default=3.0, ge=0, description="a number of seconds >= 0")
    sticky_port: StrictBool = Field(default=False, description="true or false")
    nice: StrictInt = Field(
        default=0, ge=0, le=19, description="an integer 0..19 (higher: a smaller share of a busy CPU)"
    )
    depends_on: dict[StrictStr, Annotated[StrictStr, AfterValidator(_condition)]] = Field(
        default_factory=dict, description="a mapping {service: started|ready|healthy}"
    )
    language: Language = "python"
    env: Env = Field(default_factory=dict)
    requires: Requires = ()
    liveness: Liveness = Field(
        default=Liveness(),
        description="a mapping {period_s: S, timeout_s: S, failures: N, restart_after_s: S}",
    )

    @model_validator(mode="after")
    def _instances_fit(self) -> ServiceSpec:
        if self.instances > self.max_instances:
            raise problem(
                f"{self.instances} is above max_instances ({self.max_instances}); raise max_instances",
                "instances",
            )
        return self


class JobSpec(Section):
    """A one-shot command run on request (``jobs.<name>``; the name is its key)."""

    name: JobName
    command: Command
    language: Language = "python"
    env: Env = Field(default_factory=dict)
    requires: Requires = ()


STORE_RULE = "use local, etcd (the lab's own etcd members) or {etcd: {endpoints: [HOST:PORT, ...]}}"


def store_env(value: Any) -> str:
    """A ``store:`` setting as the ``LAB_STORE`` value every service reads (runtime/client/etcd.py).

    >>> store_env("etcd"), store_env({"etcd": {"endpoints": ["127.0.0.1:2379"]}})
    ('etcd', 'etcd:127.0.0.1:2379')
    """
    if value in ("local", "etcd"):
        return str(value)
    if isinstance(value, dict) and set(value) == {"etcd"}:
        body = value["etcd"] or {}
        if isinstance(body, dict) and set(body) <= {"endpoints"}:
            endpoints = body.get("endpoints") or []
            if isinstance(endpoints, list) and all(
                isinstance(e, str) and re.fullmatch(r"[A-Za-z0-9.-]+:\d{1,5}", e) for e in endpoints
            ):
                if not endpoints:
                    return "etcd"
                try:  # the services' own reading of it, so the file is refused before they start
                    parse_store("etcd:" + ",".join(endpoints))
                except ValueError as exc:
                    raise problem(f"{quote(value)} is not allowed: {exc}") from None
                return "etcd:" + ",".join(endpoints)
    raise problem(f"{quote(value)} is not allowed; {STORE_RULE}")


Store = Annotated[StrictStr, BeforeValidator(store_env), Field(description=STORE_RULE)]


class LabFile(Section):
    """The top level of lab.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=False)

    linger_s: Number = Field(default=DEFAULT_LINGER_S, ge=0, description="a number of seconds >= 0")
    store: Store = "local"
    services: dict[ServiceName, ServiceSpec] = Field(
        default_factory=dict, description="a mapping {name: {command: [...], ...}}"
    )
    jobs: dict[JobName, JobSpec] = Field(
        default_factory=dict, description="a mapping {name: {command: [...], ...}}"
    )

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        # A service's name is its key; the body may not set another one.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for section, model in (("services", ServiceSpec), ("jobs", JobSpec)):
            bodies = data.get(section)
            if bodies is None:  # `jobs:` with nothing under it
                data.pop(section, None)
            elif isinstance(bodies, dict):
                data[section] = {key: _named(section, model, key, body) for key, body in bodies.items()}
        return data

    @model_validator(mode="after")
    def _dependencies_known_and_acyclic(self) -> LabFile:
        if not self.services:
            raise problem(f"no services listed; a lab runs at least one, e.g. {EXAMPLE_SERVICE}", "services")
        for name, spec in self.services.items():
            for dep in spec.depends_on:
                if dep not in self.services:
                    known = ", ".join(self.services)
                    raise problem(
                        f"unknown service {quote(dep)}; known services: {known}",
                        ("services", name, "depends_on", dep),
                    )
        try:
            TopologicalSorter(_graph(self.services)).prepare()
        except CycleError as exc:
            ring = _ring(exc.args[1], list(self.services))
            raise problem(
                f"dependency cycle {' -> '.join([*ring, ring[0]])}; remove one of these depends_on entries",
                ("services", ring[-1], "depends_on"),
            ) from None
        return self


@dataclass(frozen=True)
class LabConfig:
    """The whole lab: where it came from, how long it lingers, its services and jobs."""

    path: str
    project_root: str
    linger_s: float = DEFAULT_LINGER_S
    services: dict[str, ServiceSpec] = field(default_factory=dict)
    jobs: dict[str, JobSpec] = field(default_factory=dict)
    store: str = "local"  # the LAB_STORE value every service gets (when not local)

    def start_levels(self) -> list[list[str]]:
        """Services grouped by dependency depth: level 0 depends on nothing, level n on < n.

        Within a level, file order. Built with graphlib: each batch of ready nodes is a level.
        """
        position = {name: i for i, name in enumerate(self.services)}
        sorter = TopologicalSorter(_graph(self.services))
        sorter.prepare()  # parse_config already refused cycles
        levels: list[list[str]] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=position.__getitem__)
            levels.append(ready)
            sorter.done(*ready)
        return levels

    def start_order(self) -> list[str]:
        """Service names with every dependency before its dependents (level by level)."""
        return [name for level in self.start_levels() for name in level]


def load_config(path: str | os.PathLike[str]) -> LabConfig:
    """Read and validate a lab.yaml file.

    Raises:
        ConfigError: the file is missing, empty, not YAML, or breaks the schema.
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
    """Validate already-parsed YAML ``data`` from file ``path``.

    Raises:
        ConfigError: the first problem found, naming ``path``, the field and what is allowed.
    """
    if data is None:
        raise ConfigError(path, "", f"the file is empty; list the lab's services, e.g. {EXAMPLE_SERVICE}")
    if not isinstance(data, dict):
        raise ConfigError(path, "", "the top level must be a mapping with services:, jobs:, linger_s:")
    try:
        lab = LabFile.model_validate(data)
    except ValidationError as exc:
        raise config_error(path, exc, LabFile) from None
    store = lab.store
    services = dict(lab.services)
    if store != "local":
        # Every service learns the store from its environment (a service's own env: wins).
        services = {
            name: spec.model_copy(update={"env": {ENV_STORE: store, **spec.env}})
            for name, spec in services.items()
        }
    return LabConfig(
        path=path,
        project_root=str(Path(path).parent),
        linger_s=lab.linger_s,
        services=services,
        jobs=dict(lab.jobs),
        store=store,
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


def _named(section: str, model: type[Section], key: Any, body: Any) -> Any:
    if not isinstance(body, dict):
        return body  # pydantic reports "must be a mapping" at services.<key>
    for reserved in KEY_FIELDS:
        if reserved in body:
            allowed = ", ".join(sorted(set(model.model_fields) - KEY_FIELDS))
            raise problem(f"unknown key; allowed keys: {allowed}", (section, key, reserved))
    return {**body, "name": key}


def _graph(services: Mapping[str, ServiceSpec]) -> dict[str, tuple[str, ...]]:
    # graphlib's predecessors are what must come first: a service's dependencies.
    return {name: tuple(spec.depends_on) for name, spec in services.items()}


def _ring(cycle: list[str], file_order: list[str]) -> list[str]:
    """graphlib's cycle (each node a dependency of the next, first == last) as 'a depends on b'.

    Turned around, and rotated to start at the service that comes first in the file.
    """
    ring = list(reversed(cycle))[:-1]
    first = min(range(len(ring)), key=lambda i: file_order.index(ring[i]))
    return ring[first:] + ring[:first]
