"""Config schemas: a consumer's keys, their types and ranges, and the one rule that checks a value.

A service declares what it reads from the config service; the config service refuses values that
break it (INVALID_ARGUMENT, before they are stored), and the service's ConfigWatch applies the same
rule to what it receives, so a value stored before the schema existed is refused too (the service
keeps its last good value and logs why). Both sides call ``check``: one rule, one message.

    SCHEMA = schema("calculator", int_key("max_connections", 1, 100_000, default=1000))
    check(SCHEMA.keys[0], "abc", "calculator")
    # SchemaViolation: calculator/max_connections must be an integer between 1 and 100000; got 'abc'

Keys a schema does not name are not checked: a schema says what its consumer relies on, not
everything a namespace may hold.

Example:
    >>> spec = int_key("max_connections", 1, 100_000, default=1000)
    >>> check(spec, " 8 ", "calculator")
    '8'
    >>> check(spec, "-5", "calculator")
    Traceback (most recent call last):
    runtime.agent.config_schema.SchemaViolation: calculator/max_connections must be an integer between 1 and 100000; got '-5'
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from runtime.errors import quote
from runtime.v1 import config_pb2

VALUE_TYPES = ("string", "int", "bool", "json")
BOOL_WORDS = {"true": "true", "false": "false", "1": "true", "0": "false", "yes": "true", "no": "false"}
MAX_SCHEMA_KEYS = 256  # a schema is a consumer's declaration, not a data store


class SchemaViolation(ValueError):
    """A value breaks its key's spec; the message names the key, what is allowed and the value."""


def int_key(
    key: str,
    lo: int | None = None,
    hi: int | None = None,
    *,
    default: int | None = None,
    description: str = "",
) -> config_pb2.ConfigKeySpec:
    """An int key with an optional inclusive range."""
    spec = config_pb2.ConfigKeySpec(key=key, value_type="int", description=description)
    if lo is not None:
        spec.min = lo
    if hi is not None:
        spec.max = hi
    if default is not None:
        spec.default_value = str(default)
    return spec


def bool_key(key: str, *, default: bool | None = None, description: str = "") -> config_pb2.ConfigKeySpec:
    """A bool key ('true'/'false', also 1/0 and yes/no)."""
    spec = config_pb2.ConfigKeySpec(key=key, value_type="bool", description=description)
    if default is not None:
        spec.default_value = "true" if default else "false"
    return spec


def string_key(
    key: str, choices: Iterable[str] = (), *, default: str = "", description: str = ""
) -> config_pb2.ConfigKeySpec:
    """A string key, limited to ``choices`` when given."""
    return config_pb2.ConfigKeySpec(
        key=key, value_type="string", choices=list(choices), default_value=default, description=description
    )


def schema(
    namespace: str, *keys: config_pb2.ConfigKeySpec, registered_by: str = ""
) -> config_pb2.ConfigSchema:
    """A namespace's schema from key specs."""
    return config_pb2.ConfigSchema(namespace=namespace, keys=list(keys), registered_by=registered_by)


def describe(spec: config_pb2.ConfigKeySpec) -> str:
    """What a key allows, as the end of "<ns>/<key> must be ..."."""
    if spec.value_type == "int":
        has_min, has_max = spec.HasField("min"), spec.HasField("max")
        if has_min and has_max:
            return f"an integer between {spec.min} and {spec.max}"
        if has_min:
            return f"an integer of at least {spec.min}"
        if has_max:
            return f"an integer of at most {spec.max}"
        return "an integer"
    if spec.value_type == "bool":
        return "true or false"
    if spec.value_type == "json":
        return "valid JSON"
    if spec.choices:
        return "one of " + ", ".join(repr(c) for c in spec.choices)
    return "a string"


def check(spec: config_pb2.ConfigKeySpec, value: str, namespace: str) -> str:
    """The value as stored (ints and bools normalized), or SchemaViolation saying what is allowed.

    Raises:
        SchemaViolation: "<ns>/<key> must be <describe(spec)>; got <value, quoted>".
    """
    normalized = _parse(spec, value)
    if normalized is None:
        raise SchemaViolation(f"{namespace}/{spec.key} must be {describe(spec)}; got {quote(value)}")
    return normalized


def _parse(spec: config_pb2.ConfigKeySpec, value: str) -> str | None:
    if spec.value_type == "int":
        try:
            number = int(value.strip())
        except ValueError:
            return None
        if (spec.HasField("min") and number < spec.min) or (spec.HasField("max") and number > spec.max):
            return None
        return str(number)
    if spec.value_type == "bool":
        return BOOL_WORDS.get(value.strip().lower())
    if spec.value_type == "json":
        try:
            json.loads(value)
        except ValueError:
            return None
        return value
    if spec.choices and value not in spec.choices:
        return None
    return value


def check_schema(sch: config_pb2.ConfigSchema) -> None:
    """A schema must name each key once, with a known type, a sane range and a valid default.

    Raises:
        ValueError: what is wrong, naming the key.
    """
    if len(sch.keys) > MAX_SCHEMA_KEYS:
        raise ValueError(f"the schema has {len(sch.keys)} keys; at most {MAX_SCHEMA_KEYS} are allowed")
    seen: set[str] = set()
    for spec in sch.keys:
        where = f"{sch.namespace}/{spec.key}"
        if spec.key in seen:
            raise ValueError(f"{where} is declared twice in the schema")
        seen.add(spec.key)
        if spec.value_type not in VALUE_TYPES:
            raise ValueError(
                f"{where} has unknown value_type {quote(spec.value_type)}; use one of {', '.join(VALUE_TYPES)}"
            )
        if spec.value_type != "int" and (spec.HasField("min") or spec.HasField("max")):
            raise ValueError(f"{where}: min and max apply to int keys only")
        if spec.HasField("min") and spec.HasField("max") and spec.min > spec.max:
            raise ValueError(f"{where}: min {spec.min} is above max {spec.max}")
        if spec.choices and spec.value_type != "string":
            raise ValueError(f"{where}: choices apply to string keys only")
        if spec.default_value:
            check(spec, spec.default_value, sch.namespace)


def stamp(sch: config_pb2.ConfigSchema) -> config_pb2.ConfigSchema:
    """A copy with ``registered_at`` set to now (what the config service stores)."""
    out = config_pb2.ConfigSchema()
    out.CopyFrom(sch)
    out.registered_at = time.time_ns() // 1_000_000
    return out


def spec_of(sch: config_pb2.ConfigSchema | None, key: str) -> config_pb2.ConfigKeySpec | None:
    """The spec of ``key`` in ``sch``, or None when the schema does not name it."""
    if sch is None:
        return None
    for spec in sch.keys:
        if spec.key == key:
            return spec
    return None
