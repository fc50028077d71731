"""Every error the runtime raises on purpose, in one tree.

    LabError                       base: something the user can act on
    ├── UsageError (ValueError)    a Lab API call got an argument it cannot use (unknown language,
    │                              operation, fault kind, log level, instance; a value of the wrong
    │                              type): raised before anything is sent, names what is allowed
    ├── ConfigError                lab.yaml is malformed (names the file, the field, what is allowed)
    ├── LabNotRunning              no supervisor answers for this lab dir
    ├── StartupError               a service did not become ready (names it, exit code, last lines)
    ├── ServiceNotFound            an unknown service or instance name (gRPC NOT_FOUND)
    ├── ServiceUnavailable         a lab service does not answer (gRPC UNAVAILABLE): is it running?
    ├── DiscoveryError             the broker is unreachable or refused a lookup
    │   └── NoInstances            the broker knows no instance of the gRPC service (right now)
    └── ClientError                a job or client call failed (carries the gRPC status name)

Which one a failed gRPC call becomes is decided by its status code, in one place for the Lab API
(``runtime.lab.connection.rpc_error``), never by matching message text.

Anything else escaping the runtime is a bug in the runtime, not in the caller's code.

Messages that echo what a caller sent go through ``quote``: at most ``QUOTE_LIMIT`` characters
of it, so a 100 KB name never turns into a 100 KB status message (Python clients refuse status
messages over 8 KB with RESOURCE_EXHAUSTED, hiding the real INVALID_ARGUMENT).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

QUOTE_LIMIT = 200  # characters of caller input echoed in a message; enough to recognise it


# Lab names (services, jobs, instances) become instance ids, environment values, file names and
# URL parts: keep them plain. lab.yaml, the broker and the health service apply the same rule.
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
NAME_MAX = 63
NAME_RULE = f"use letters, digits, - and _, starting with a letter, at most {NAME_MAX} characters"


def name_problem(what: str, name: str) -> str | None:
    """Why ``name`` is not a valid lab name (for ``what``, e.g. "instance_id"), or None when it is.

    >>> name_problem("instance_id", "calculator-1")
    >>> name_problem("instance_id", "../x")
    "instance_id '../x' is not a valid name; use letters, digits, - and _, starting with a letter, at most 63 characters"
    """
    if len(name) <= NAME_MAX and NAME_PATTERN.fullmatch(name):
        return None
    return f"{what} {quote(name)} is not a valid name; {NAME_RULE}"


def length_problem(what: str, text: str, limit: int = QUOTE_LIMIT) -> str | None:
    """Why ``text`` is too long for ``what`` (more than ``limit`` characters), or None."""
    return None if len(text) <= limit else f"{what} is {len(text)} characters long; at most {limit} are allowed"


def quote(text: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr`` of caller input for an error message, cut to ``limit`` characters.

    Example:
        >>> quote("calc")
        "'calc'"
        >>> quote("x" * 1000, limit=5)
        "'xxxxx'... (1000 characters)"
    """
    s = text if isinstance(text, str) else str(text)
    if len(s) <= limit:
        return repr(s)
    return f"{s[:limit]!r}... ({len(s)} characters)"


LISTING_LIMIT = 20  # names shown in "known services: ..." before "and N more"
LISTING_NAME_CHARS = 60


def listing(names: Iterable[str], limit: int = LISTING_LIMIT) -> str:
    """Known names for a message ("a, b, c and 7 more"), each cut short: callers can register
    names too, so neither their number nor their length may grow a message without bound.

    Example:
        >>> listing(["broker", "calculator"])
        'broker, calculator'
        >>> listing([f"s{i}" for i in range(25)], limit=3)
        's0, s1, s2 and 22 more'
    """
    items = list(names)
    shown = [n if len(n) <= LISTING_NAME_CHARS else n[:LISTING_NAME_CHARS] + "..." for n in items[:limit]]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(shown) + more


class LabError(Exception):
    """Base of every error the runtime raises on purpose."""


class UsageError(LabError, ValueError):
    """A Lab API call got an argument it cannot use; the message names what is allowed.

    Also a ``ValueError``, so code written against plain Python conventions still catches it.

    Example:
        >>> raise UsageError("unknown fault kind 'slow'; use one of: delay, crash")
        Traceback (most recent call last):
        runtime.errors.UsageError: unknown fault kind 'slow'; use one of: delay, crash
    """


class ConfigError(LabError):
    """lab.yaml (or an argument standing for it) is malformed.

    Args:
        path: the file.
        field: the dotted field path, e.g. ``services.calculator.restart``.
        problem: what is wrong and what is allowed.
    """

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = path
        self.field = field
        self.problem = problem
        where = f"{path}: {field}" if field else path
        super().__init__(f"{where}: {problem}")


class LabNotRunning(LabError):
    """No supervisor daemon answers for the lab directory."""


class StartupError(LabError):
    """A service did not become ready.

    Args:
        service: the instance or service name.
        reason: what happened ("exited with code 1 before READY", "no READY within 10 s").
        last_lines: its last output lines, shown so the learner sees why.
    """

    def __init__(self, service: str, reason: str, last_lines: Sequence[str] = ()) -> None:
        self.service = service
        self.reason = reason
        self.last_lines = list(last_lines)
        text = f"{service} {reason}"
        if self.last_lines:
            text += "; last log lines:\n  " + "\n  ".join(self.last_lines)
        super().__init__(text)


class ServiceNotFound(LabError, LookupError):
    """An unknown service or instance name."""


class ServiceUnavailable(LabError):
    """A lab service does not answer (gRPC UNAVAILABLE): stopped, restarting or not in this lab."""


class DiscoveryError(LabError):
    """The broker cannot be reached, or knows no instance of the requested service."""


class NoInstances(DiscoveryError):
    """The broker answered, but knows no (healthy) instance of the requested gRPC service."""


class ClientError(LabError):
    """A client call or a one-shot job failed.

    Args:
        message: what failed.
        code: the gRPC status name (e.g. ``INVALID_ARGUMENT``) when there is one.
    """

    def __init__(self, message: str, code: str = "") -> None:
        self.code = code
        self.message = message  # without the code, to build a longer message from
        super().__init__(f"{code}: {message}" if code else message)
