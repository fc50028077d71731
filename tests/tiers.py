"""Which tests start processes (the ``integration`` tier), decided from their code, and a guard.

``make test-fast`` runs ``-m "not integration"``: the pure and in-process tiers. Nobody has to
remember the mark: ``starts_processes(item)`` reads the test function and its fixtures (and,
through them, the helpers defined under tests/) and finds what starts a process there:

* the fixtures named in ``PROCESS_FIXTURES`` (``lab_factory``); a parametrized fixture whose
  process-starting params carry the mark themselves (``pytest.param("etcd",
  marks=pytest.mark.integration)``) is left to those marks;
* ``subprocess``, ``multiprocessing``, ``asyncio.create_subprocess_*``, ``os.fork`` and friends;
* modules whose job is starting processes (``STARTER_MODULES``: the lab launcher, the toolchain
  builder, Playwright's browser) and the ``Lab`` facade, whose ``up()`` starts a daemon;
* any helper under tests/ (``service_process``, ``logprocs``, ``procs.labd``, a module-level
  function or class of the test file) that reaches one of those.

Static reading can miss a process started deep inside a library, so ``ProcessGuard`` checks at
run time too (Python's audit hooks see every ``subprocess.Popen``, ``os.fork``, ``os.system``...):
a test without the mark that starts a process fails with a message saying to mark it
``@pytest.mark.integration`` (or to add the module to ``STARTER_MODULES``).
"""

from __future__ import annotations

import inspect
import sys
import types
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent

PROCESS_FIXTURES = frozenset({"lab_factory"})
STARTER_MODULES = (
    "subprocess",
    "multiprocessing",
    "asyncio.subprocess",
    "pty",
    "runtime.lab.launcher",
    "runtime.supervisor.process",
    "calculator.toolchains",
    "playwright",
)
# Attribute names that start a process whichever object they are read from (os.fork, asyncio...).
STARTER_CALLS = frozenset(
    {
        "fork",
        "forkpty",
        "posix_spawn",
        "posix_spawnp",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "spawnv",
        "spawnve",
        "system",
        "popen",
        "create_subprocess_exec",
        "create_subprocess_shell",
    }
)
AUDIT_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.exec",
        "os.spawn",
        "os.system",
        "pty.spawn",
    }
)


def is_notebook_item(item: pytest.Item) -> bool:
    """nbval's notebook items (each one starts a Jupyter kernel)."""
    return type(item).__module__.startswith("nbval")


def starts_processes(item: pytest.Item) -> bool:
    """True when the test, one of its fixtures, or a tests/ helper they call starts a process."""
    if is_notebook_item(item):
        return True
    fixturenames = set(getattr(item, "fixturenames", ()))
    if fixturenames & PROCESS_FIXTURES:
        return True
    functions: list[Any] = [getattr(item, "obj", None)]
    info = getattr(item, "_fixtureinfo", None)
    for defs in getattr(info, "name2fixturedefs", {}).values():
        functions += [d.func for d in defs if not _tier_per_param(d)]
    seen: set[int] = set()
    return any(_reaches_starter(f, seen) for f in functions if f is not None)


def _tier_per_param(fixturedef: Any) -> bool:
    """A parametrized fixture that marks its process-starting params ``integration`` itself.

    E.g. ``params=["local", pytest.param("etcd", marks=pytest.mark.integration)]``: its body
    starts etcd only for the marked param, so reading the body would put the local cases in the
    integration tier too. Its params' marks decide instead (pytest applies them to each case).
    """
    return any(
        any(getattr(mark, "name", "") == "integration" for mark in getattr(param, "marks", ()))
        for param in getattr(fixturedef, "params", None) or ()
    )


def _reaches_starter(obj: Any, seen: set[int]) -> bool:
    func = inspect.unwrap(getattr(obj, "__func__", obj))
    code = getattr(func, "__code__", None)
    if code is None or id(code) in seen:
        return False
    return _code_reaches(code, getattr(func, "__globals__", {}), seen)


def _code_reaches(code: types.CodeType, globals_: dict[str, Any], seen: set[int]) -> bool:
    seen.add(id(code))
    for name in code.co_names:
        if name in STARTER_CALLS or _is_starter_module_name(name):  # incl. imports inside the function
            return True
        obj = globals_.get(name)
        if obj is not None and _object_reaches(obj, seen):
            return True
    return any(
        isinstance(const, types.CodeType) and id(const) not in seen and _code_reaches(const, globals_, seen)
        for const in code.co_consts
    )


def _object_reaches(obj: Any, seen: set[int]) -> bool:
    if isinstance(obj, types.ModuleType):
        return _is_starter_module_name(obj.__name__)
    module = getattr(obj, "__module__", None) or ""
    if _is_starter_module_name(module):
        return True
    if isinstance(obj, type):
        if obj.__name__ == "Lab" and module.startswith("runtime.lab"):
            return True  # Lab.up() starts (or attaches to) a supervisor daemon
        if _defined_in_tests(obj) and id(obj) not in seen:
            seen.add(id(obj))
            return any(_reaches_starter(m, seen) for m in _methods(obj))
        return False
    if callable(obj) and _defined_in_tests(obj):
        return _reaches_starter(obj, seen)
    return False


def _is_starter_module_name(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in STARTER_MODULES)


def _defined_in_tests(obj: Any) -> bool:
    try:
        source = inspect.getsourcefile(obj)
    except TypeError:
        return False
    return source is not None and Path(source).resolve().is_relative_to(TESTS_DIR)


def _methods(cls: type) -> list[Any]:
    out = []
    for value in vars(cls).values():
        if isinstance(value, property):
            out += [f for f in (value.fget, value.fset) if f is not None]
        elif isinstance(value, staticmethod | classmethod):
            out.append(value.__func__)
        elif inspect.isfunction(value):
            out.append(value)
    return out


class ProcessStartedOutsideIntegration(RuntimeError):
    """A test without the ``integration`` mark started a process (the fast tier must not)."""


class ProcessGuard:
    """Fails a process start while a test without the ``integration`` mark runs.

    One audit hook for the session (audit hooks cannot be removed); ``enter(nodeid)`` arms it for
    a test, ``enter(None)`` disarms it between tests and for integration tests.
    """

    def __init__(self) -> None:
        self._current: str | None = None
        self.violations: list[str] = []
        sys.addaudithook(self._hook)

    def enter(self, nodeid: str | None) -> None:
        """Arm the guard for ``nodeid`` (None: disarm); forgets the previous test's violations."""
        self._current = nodeid
        self.violations = []

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        nodeid = self._current
        if nodeid is None or event not in AUDIT_EVENTS:
            return
        what = f"{args[0]!r}"[:200] if args else ""
        message = (
            f"{nodeid} started a process ({event} {what}) but is not marked integration: "
            "mark it @pytest.mark.integration, use a process fixture (lab_factory, start_service), "
            "or add the module that starts it to STARTER_MODULES in tests/tiers.py"
        )
        # Kept as well as raised: code under test may catch the exception; the test fails anyway.
        self.violations.append(message)
        raise ProcessStartedOutsideIntegration(message)
