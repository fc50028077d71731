"""Every error the runtime raises on purpose, in one tree.

    LabError                       base: something the user can act on
    ├── ConfigError                lab.yaml is malformed (names the file, the field, what is allowed)
    ├── LabNotRunning              no supervisor answers for this lab dir
    ├── StartupError               a service did not become ready (names it, exit code, last lines)
    ├── ServiceNotFound            an unknown service or instance name
    ├── DiscoveryError             no instances of a gRPC service are registered / broker unreachable
    └── ClientError                a job or client call failed (carries the gRPC status)

Anything else escaping the runtime is a bug in the runtime, not in the caller's code.
"""

from __future__ import annotations

from collections.abc import Sequence


class LabError(Exception):
    """Base of every error the runtime raises on purpose."""


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


class DiscoveryError(LabError):
    """The broker cannot be reached, or knows no instance of the requested service."""


class ClientError(LabError):
    """A client call or a one-shot job failed.

    Args:
        message: what failed.
        code: the gRPC status name (e.g. ``INVALID_ARGUMENT``) when there is one.
    """

    def __init__(self, message: str, code: str = "") -> None:
        self.code = code
        super().__init__(f"{code}: {message}" if code else message)
