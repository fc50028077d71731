"""pydantic's validation errors turned into lab.yaml messages: the file, the field, what is allowed.

pydantic reports every problem with a location (``('services', 'calc', 'restart')``) and a type
(``literal_error``, ``int_type``, ``extra_forbidden``, ...). A learner wants one sentence instead:

    lab.yaml: services.calc.restart: 'sometimes' is not allowed; use one of always, on-failure, never

The "use ..." part is the field's ``description`` in runtime/supervisor/config.py, found by walking
the location through the section models. Validators that know better raise :func:`problem` with
their own sentence (and, for checks that span fields, the field it is about).

Example:
    >>> quote([1, 2]), quote("calc"), quote(["x"] * 100)[-20:]
    ('[1, 2]', "'calc'", '... (500 characters)')
"""

from __future__ import annotations

import types
import typing
from inspect import isclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from runtime import errors
from runtime.errors import ConfigError

# Fields filled from the mapping key (services.<name>), never written in the body.
KEY_FIELDS = frozenset({"name"})
FIELD_PART_LIMIT = 80  # characters of one field-path part (a huge bad name stays readable)
_LAB_ERROR = "lab"
_MAPPING_ERRORS = ("model_type", "dict_type", "model_attributes_type")


def quote(value: Any, limit: int = errors.QUOTE_LIMIT) -> str:
    """A bad value for a message: a string as :func:`runtime.errors.quote` does, anything else by repr.

    YAML gives lists, numbers and booleans too; ``[1]`` should read as a list, not as ``'[1]'``.
    """
    if isinstance(value, str):
        return errors.quote(value, limit)
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def problem(text: str, field: str | tuple[Any, ...] = ()) -> PydanticCustomError:
    """An error for a validator to raise with its own sentence.

    Args:
        text: what is wrong and what is allowed.
        field: the field it is about, relative to where the validator runs (a model validator
            of ``services.a`` saying ``"instances"`` means ``services.a.instances``).
    """
    return PydanticCustomError(
        _LAB_ERROR, "{problem}", {"problem": text, "field": (field,) if isinstance(field, str) else field}
    )


def config_error(path: str, exc: ValidationError, root: type[BaseModel]) -> ConfigError:
    """The first problem of ``exc`` (validating ``root`` from file ``path``) as a ConfigError.

    Bad names and unknown keys come first, as a misspelt key often explains the rest.
    """
    err = sorted(exc.errors(), key=_rank)[0]
    loc = tuple(err["loc"])
    if loc and loc[-1] == "[key]":  # a mapping key (a service name) is the field itself
        loc = loc[:-1]
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == _LAB_ERROR:
        return ConfigError(path, _dotted(loc + tuple(ctx.get("field", ()))), str(ctx["problem"]))
    owner, model = _walk(root, loc[:-1] if kind == "extra_forbidden" else loc)
    allowed = owner.description if owner is not None else None
    value = err.get("input")
    if kind == "extra_forbidden":
        keys = sorted(set(model.model_fields) - KEY_FIELDS) if model is not None else []
        text = f"unknown key; allowed keys: {', '.join(keys)}"
    elif kind in _MAPPING_ERRORS:
        text = f"must be a mapping, got {type(value).__name__} {quote(value)}"
    elif kind == "missing":
        text = f"missing; give {allowed}" if allowed else "missing"
    elif allowed:
        text = f"{quote(value)} is not allowed; use {allowed}"
    else:
        text = f"{quote(value)} is not allowed: {err['msg']}"
    return ConfigError(path, _dotted(loc), text)


def _rank(err: ErrorDetails) -> int:
    if "[key]" in err["loc"]:
        return 0
    return 1 if err["type"] == "extra_forbidden" else 2


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[FieldInfo | None, type[BaseModel] | None]:
    """The innermost model field on the path ``loc``, and the model the path ends in (if any)."""
    model: type[BaseModel] | None = root
    owner: FieldInfo | None = None
    skip_key = False
    for part in loc:
        if skip_key:  # the key of a mapping of sections (a service name)
            skip_key = False
            continue
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return owner, None
        owner = model.model_fields[part]
        model, skip_key = _section_in(owner.annotation)
    return owner, model


def _section_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The section model a field holds: directly, optionally, or as the values of a mapping."""
    if isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation, False
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and args:
        inner, _ = _section_in(args[-1])
        return inner, inner is not None
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            inner, keyed = _section_in(arg)
            if inner is not None:
                return inner, keyed
    return None, False


def _dotted(parts: tuple[Any, ...]) -> str:
    def short(part: Any) -> str:
        text = str(part)
        return text if len(text) <= FIELD_PART_LIMIT else text[:FIELD_PART_LIMIT] + "..."

    return ".".join(short(p) for p in parts)
