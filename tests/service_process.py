"""Start one lab service as a real subprocess for a test, read its READY line, stop it by pid.

    proc = start_service("runtime.services.broker", lab_dir, service="broker", instance="broker-1")
    ... proc.address ...
    proc.stop()      # SIGTERM, wait, SIGKILL if needed; returns the exit code

Every child carries LAB_DIR (the test's lab dir), so the leak check in conftest.py can see it.
"""

from __future__ import annotations

import collections
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 8.0
OUTPUT_LINES_KEPT = 2000


class ServiceProcess:
    """A started service: its pid, port, and every output line (bounded) for asserts."""

    def __init__(self, proc: subprocess.Popen[str], name: str) -> None:
        self.proc = proc
        self.name = name
        self.port = 0
        self.lines: collections.deque[str] = collections.deque(maxlen=OUTPUT_LINES_KEPT)
        self._stdout: queue.Queue[str | None] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(proc.stdout, True), name=f"{name}-stdout", daemon=True),
            threading.Thread(
                target=self._read, args=(proc.stderr, False), name=f"{name}-stderr", daemon=True
            ),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _read(self, stream, is_stdout: bool) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            if is_stdout:
                self._stdout.put(line)
        if is_stdout:
            self._stdout.put(None)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> int:
        """Wait for ``READY port=N``; returns N. Fails with the output when it does not come."""
        from runtime.identity import parse_ready_line

        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._stdout.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                line = ""
            if line is None or remaining <= 0:
                self.stop()
                raise AssertionError(f"{self.name} gave no READY line; output:\n" + "\n".join(self.lines))
            port = parse_ready_line(line or "")
            if port:
                self.port = port
                return port

    def wait_for_line(self, text: str, timeout_s: float = 5.0) -> str:
        """Wait until an output line contains ``text``; returns that line."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"{self.name} never printed {text!r}; output:\n" + "\n".join(self.lines))

    def signal(self, sig: int) -> None:
        """Send ``sig`` to this process (by pid)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Wait for the exit; returns the exit code."""
        code = self.proc.wait(timeout=timeout_s)
        for reader in self._readers:
            reader.join(timeout=2.0)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not any(r.is_alive() for r in self._readers):
                stream.close()
        return code

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait, SIGKILL if it does not go; always reaped. Returns the exit code."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                return self.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.wait(timeout_s)


def stop_all(procs: list[ServiceProcess]) -> list[int]:
    """Stop several services side by side (SIGTERM to all first); returns their exit codes."""
    for proc in procs:
        proc.signal(signal.SIGTERM)
    return [proc.stop() for proc in procs]


def start_service(
    module: str,
    lab_dir: Path,
    *,
    service: str,
    instance: str,
    broker: str = "",
    env: dict[str, str] | None = None,
    ready: bool = True,
) -> ServiceProcess:
    """Start ``python -m module`` as lab instance ``instance``; by default wait for its READY line."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    child_env.update(
        LAB_DIR=str(lab_dir),
        LAB_SERVICE=service,
        LAB_INSTANCE=instance,
        LAB_BROKER_ADDR=broker,
        LAB_LANGUAGE="python",
        PYTHONUNBUFFERED="1",
    )
    child_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sp = ServiceProcess(proc, instance)
    if ready:
        sp.wait_ready()
    return sp
