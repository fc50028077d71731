"""The fork server: one pre-imported Python parent that forks the lab's Python services.

    proc, control = launch(lab_dir, project_root)     # the daemon, first thing (see __main__)
    # -> python -m runtime.supervisor.forkserver --lab-dir D --fd N

Every Python service used to pay for its own interpreter start and its own imports (grpc,
protobuf, the agent, Connect: ~0.15-0.2 s of CPU each, ten times per lab start, again on every
restart), and kept its own copy of all of it in memory. The daemon starts this process once,
before its own imports: it imports what every service needs (grpc, the agent, Connect) while the
daemon imports and reads lab.yaml, then what the services' ``__main__`` modules import (the list
comes from the daemon), freezes the heap (``gc.freeze``, so reference counting and collections
dirty fewer shared pages) and then forks one child per service. A child is still one process per service, in its own session, with its own pipes and
environment, running ``python -m <module>`` through :mod:`runpy`: what the service sees is the same
as after an exec, only its imports are already done.

It never starts gRPC itself (no channel, no server, so no gRPC thread exists when it forks:
forking a process with gRPC's threads is unsafe), and it runs no event loop: a plain loop over
its control socket and SIGCHLD.

Control socket (AF_UNIX SOCK_SEQPACKET, one JSON object per message, the daemon's side is
``runtime.supervisor.forked``):

    daemon -> server   {"op": "preload", "modules": ["runtime.services.broker", ...]}   (first)
                       {"op": "spawn", "id": 7, "argv": [...], "env": {...}, "cwd": "..."}
                       with two descriptors (SCM_RIGHTS): the child's stdout and stderr
    server -> daemon   {"op": "ready", "pid": P, "preloaded": [...], "failed": {module: error}}
                       {"op": "spawned", "id": 7, "pid": C}   or   {"op": "spawned", "id": 7, "error": "..."}
                       {"op": "exited", "pid": C, "returncode": R}   (negative: killed by that signal)

A child is reported "spawned" before its "exited", on the same socket, so the daemon always
knows a pid before it hears that it exited. Parent death, in a chain: the daemon starts this
server under ``setpriv --pdeathsig KILL``; each child arms PR_SET_PDEATHSIG (SIGKILL) for this
server's death and checks ``getppid()`` after arming. The daemon's group keeper kills every
child's group if the daemon is SIGKILLed. End of the control socket (the daemon is gone or done):
the server exits, and its children with it.
"""

from __future__ import annotations

import argparse
import ast
import ctypes
import gc
import importlib
import importlib.util
import io
import json
import os
import runpy
import selectors
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from runtime.identity import (
    ENV_FORKSERVER,
    ENV_INSTANCE,
    ENV_LAB_DIR,
    ENV_NICE,
    ENV_PARENT_PID,
    ENV_PYTHONUNBUFFERED,
)

MAX_MESSAGE = 1 << 20  # one spawn request: argv + environment, far below this
FDS_PER_SPAWN = 2  # stdout, stderr
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
ORPHAN_EXIT = 70  # the child found this server gone right after the fork (EX_SOFTWARE)
# What every Python service imports, loaded before the daemon says which services there are.
COMMON = ("grpc", "grpc.aio", "runtime.agent", "runtime.connect", "runtime.services.main")
SETPRIV = shutil.which("setpriv")


@dataclass(frozen=True)
class ChildPlan:
    """What a freshly forked child runs: ``python -m module *args`` as if exec'd."""

    module: str
    args: list[str]
    argv0: str


def module_of(argv: list[str], python: str) -> str:
    """The module of ``[python, -m, module, ...]``, or '' if ``argv`` is any other command."""
    if len(argv) >= 3 and argv[0] == python and argv[1] == "-m" and argv[2] and not argv[2].startswith("-"):
        return argv[2]
    return ""


def imports_of(module: str) -> list[str]:
    """The absolute imports at the top of what ``python -m module`` runs (its ``__main__`` for a
    package), read from the source, never executed: a script's body must run only in a child."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise ModuleNotFoundError(f"no module named {module!r}")
    if spec.submodule_search_locations is not None:
        spec = importlib.util.find_spec(f"{module}.__main__")
        if spec is None:
            raise ModuleNotFoundError(f"{module!r} is a package without __main__")
    if spec.origin is None or not spec.origin.endswith(".py"):
        return []
    with open(spec.origin, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), spec.origin)
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            # `from pkg import sub` may name a submodule (calculator_pb2_grpc): import it too.
            names.extend(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _is_attribute(target: str) -> bool:
    # "pkg.name" from `from pkg import name`: already there (a function, a class, a submodule
    # pkg imported itself); anything else must be a submodule, imported as such.
    parent, _, attr = target.rpartition(".")
    return bool(parent) and hasattr(sys.modules.get(parent), attr)


def preload(modules: list[str], *, whole: bool = False) -> tuple[list[str], dict[str, str]]:
    """Import what each module's ``python -m`` run imports (``whole``: the modules themselves);
    (imported, {module: why it failed})."""
    done: list[str] = []
    failed: dict[str, str] = {}
    for name in modules:
        try:
            for target in [name] if whole else imports_of(name):
                if target not in sys.modules and not _is_attribute(target):
                    importlib.import_module(target)
        except Exception as exc:  # noqa: BLE001 - a module that fails here fails in its child, visibly
            failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        done.append(name)
    return done, failed


class Server:
    """The server's loop: spawn requests in, children's pids and exits out."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.pid = os.getpid()
        self.children: set[int] = set()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector = selectors.DefaultSelector()

    def send(self, message: dict) -> None:
        self.control.send(json.dumps(message).encode())

    def serve(self) -> ChildPlan | None:
        """Serve until the control socket ends (returns None) or in a new child (its plan)."""
        signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd below does the work
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        self.selector.register(self.control, selectors.EVENT_READ, "control")
        self.selector.register(self._wake_r, selectors.EVENT_READ, "sigchld")
        while True:
            for key, _ in self.selector.select():
                if key.data == "sigchld":
                    self._drain_wakeups()
                    self._reap()
                    continue
                try:
                    data, fds, _, _ = socket.recv_fds(self.control, MAX_MESSAGE, FDS_PER_SPAWN)
                except (ConnectionResetError, InterruptedError):
                    data, fds = b"", []
                if not data:  # the daemon closed its end (or died): we go, our children with us
                    return None
                plan = self._spawn(data, fds)
                if plan is not None:
                    return plan

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.send({"op": "exited", "pid": pid, "returncode": os.waitstatus_to_exitcode(status)})

    def _spawn(self, data: bytes, fds: list[int]) -> ChildPlan | None:
        try:
            request = json.loads(data)
            request_id = request["id"]
            argv, env, cwd = list(request["argv"]), dict(request["env"]), str(request["cwd"])
        except (ValueError, KeyError, TypeError) as exc:
            for fd in fds:
                os.close(fd)
            print(f"forkserver: malformed request dropped: {exc}", file=sys.stderr)
            return None
        module = module_of(argv, sys.executable)
        if not module or len(fds) != FDS_PER_SPAWN:
            for fd in fds:
                os.close(fd)
            self.send({"op": "spawned", "id": request_id, "error": f"not a python -m command: {argv[:3]}"})
            return None
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            self.send({"op": "spawned", "id": request_id, "error": f"fork failed: {exc}"})
            return None
        if pid == 0:
            self._become_child(fds, env, cwd, argv)
            return ChildPlan(module=module, args=argv[3:], argv0=argv[0])
        for fd in fds:
            os.close(fd)
        self.children.add(pid)
        self.send({"op": "spawned", "id": request_id, "pid": pid})
        return None

    def _become_child(self, fds: list[int], env: dict[str, str], cwd: str, argv: list[str]) -> None:
        # In the child, right after the fork: leave the server's world, take the service's.
        os.setsid()  # its own session and process group, as start_new_session gives an exec'd one
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != self.pid:  # the server died between fork and arming
            os._exit(ORPHAN_EXIT)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        for sock in (self.control, self._wake_r, self._wake_w):
            sock.close()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in (null, *fds):
            os.close(fd)
        os.chdir(cwd)
        if env.get(ENV_NICE, "").isdigit():  # lab.yaml's nice, before any thread exists (threads inherit it)
            os.nice(int(env[ENV_NICE]))
        env[ENV_PARENT_PID] = str(self.pid)
        os.environ.clear()
        os.environ.update(env)
        instance = env.get(ENV_INSTANCE, "")
        if instance:  # `ps -o comm`, top and /proc/PID/comm show the instance, not "python"
            libc.prctl(PR_SET_NAME, ctypes.c_char_p(instance.encode()[:15]), 0, 0, 0)
        set_cmdline(argv)
        # The streams of `python -u` (the daemon sets PYTHONUNBUFFERED=1 for Python children).
        sys.stdout = io.TextIOWrapper(
            io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True, write_through=True
        )
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
        )
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")


def set_cmdline(argv: list[str]) -> None:
    """Show ``argv`` in /proc/PID/cmdline (ps, psutil) instead of the fork server's own command.

    The kernel reads cmdline from the memory that held this process's original argv (its bounds
    are fields 48 and 49 of /proc/PID/stat); the new one is written there, cut to fit, the rest
    zeroed, as setproctitle does. Nothing else reads that memory once Python has started.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])
    except (OSError, IndexError, ValueError):
        return
    if end <= start:
        return
    title = "\0".join(argv).encode()[: end - start - 1]
    buffer = title + b"\0" * (end - start - len(title))
    ctypes.memmove(start, buffer, len(buffer))


def run_child(plan: ChildPlan) -> None:
    """Run the service as ``python -m`` would; its SystemExit ends the process the usual way.

    ``runpy._run_module_as_main`` is what the interpreter itself calls for ``-m`` (private, but
    it is the only way to get its exact behaviour: argv[0], ``__main__``, and "python: No module
    named X" with exit code 1 instead of a traceback).
    """
    sys.argv = [plan.argv0, *plan.args]  # runpy replaces argv[0] with the module's file
    runpy._run_module_as_main(plan.module, alter_argv=True)  # type: ignore[attr-defined]


Launched = tuple[subprocess.Popen[bytes], socket.socket]
"""A started fork server and the daemon's end of its control socket (:func:`launch`)."""


def forking_enabled(env: Mapping[str, str] | None = None) -> bool:
    """False when ``LAB_FORKSERVER=0`` asks the daemon to exec every service."""
    return (os.environ if env is None else env).get(ENV_FORKSERVER, "1") != "0"


def server_env(lab_dir: str) -> dict[str, str]:
    """The fork server's environment: the daemon's, the lab dir (``/proc/PID/environ`` of every
    forked child shows it: how tools find a lab's processes) and unbuffered streams."""
    return {**os.environ, ENV_LAB_DIR: lab_dir, ENV_PYTHONUNBUFFERED: "1"}


def with_parent_death(argv: list[str]) -> list[str]:
    """``argv`` under ``setpriv --pdeathsig KILL`` (when setpriv exists): the kernel SIGKILLs the
    process when the thread that started it dies. The one way the daemon starts any child."""
    return [SETPRIV, "--pdeathsig", "KILL", "--", *argv] if SETPRIV else argv


def discard(launched: Launched) -> None:
    """Stop a fork server nobody will use (it may still be importing: killed, not asked)."""
    launched[1].close()
    launched[0].kill()
    launched[0].wait()


def launch(lab_dir: str, project_root: str, env: dict[str, str]) -> Launched:
    """Start a fork server for ``lab_dir`` under ``setpriv --pdeathsig KILL`` in its own session;
    returns it and the daemon's end of its control socket. Call it from the daemon's main thread
    (the parent-death signal follows the thread that forked). OSError if it cannot start."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    argv = [
        sys.executable,
        "-m",
        "runtime.supervisor.forkserver",
        "--lab-dir",
        lab_dir,
        "--fd",
        str(theirs.fileno()),
    ]
    try:
        proc = subprocess.Popen(
            with_parent_death(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            cwd=project_root,
            env=env,
            start_new_session=True,
            pass_fds=(theirs.fileno(),),
        )
    except OSError:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


def main(argv: list[str] | None = None) -> int:
    """Preload, tell the daemon we are ready, serve; in a forked child, run its service."""
    parser = argparse.ArgumentParser(prog="python -m runtime.supervisor.forkserver")
    parser.add_argument("--lab-dir", required=True, help="the lab this server belongs to (for ps)")
    parser.add_argument("--fd", type=int, required=True, help="the control socket's descriptor")
    args = parser.parse_args(argv)
    control = socket.socket(fileno=args.fd)
    _, failed = preload(list(COMMON), whole=True)
    first = control.recv(MAX_MESSAGE)
    if not first:  # the daemon went (a locked lab, a bad lab.yaml) before it needed us
        return 0
    request = json.loads(first)
    modules = [str(m) for m in request.get("modules", [])] if request.get("op") == "preload" else []
    loaded, more_failed = preload(modules)
    failed.update(more_failed)
    gc.collect()
    gc.freeze()  # what is imported now stays shared with every child
    server = Server(control)
    server.send({"op": "ready", "pid": server.pid, "preloaded": loaded, "failed": failed})
    plan = server.serve()
    if plan is None:
        return 0
    del server
    # The preloaded objects stay frozen (never collected, so never copied); an exception from the
    # service goes up to the interpreter, which prints it and exits 1, as after an exec.
    run_child(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
