"""Test helper: run a lab service module as a real child process, read its READY port, stop it.

Used by the logger, shipper and correlation tests. Every child gets LAB_DIR under the test's
tmp_path, so the autouse leak fixture sees any child a test forgets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from runtime.identity import parse_ready_line

READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
ROOT = Path(__file__).resolve().parent.parent


class Child:
    """One service process; its output lines are kept (and passed to ``on_line`` if given)."""

    def __init__(
        self,
        module: str,
        lab_dir: Path,
        *,
        service: str,
        instance: str = "",
        broker: str = "",
        port: int = 0,
        env: dict[str, str] | None = None,
        on_line: Callable[[str, str], None] | None = None,
    ) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
        full.update(
            LAB_DIR=str(lab_dir),
            LAB_SERVICE=service,
            LAB_INSTANCE=instance or f"{service}-1",
            LAB_BROKER_ADDR=broker,
            LAB_PORT=str(port),
            LAB_PORT_STRICT="1" if port else "0",
            PYTHONUNBUFFERED="1",
        )
        full.update(env or {})
        self.lines: list[tuple[str, str]] = []
        self._on_line = on_line
        self._ready = threading.Event()
        self.port = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, "stderr"), daemon=True),
        ]
        for t in self._readers:
            t.start()
        if not self._ready.wait(READY_TIMEOUT_S):
            self.stop()
            raise RuntimeError(
                f"{module} printed no READY line within {READY_TIMEOUT_S} s: {self.lines[-10:]}"
            )
        if not self.port:
            raise RuntimeError(f"{module} exited before READY: {self.lines[-10:]}")

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` of the child."""
        return f"127.0.0.1:{self.port}"

    def _read(self, stream: object, name: str) -> None:
        for line in stream:  # type: ignore[attr-defined]
            text = line.rstrip("\n")
            self.lines.append((name, text))
            port = parse_ready_line(text) if name == "stdout" else None
            if port and not self.port:
                self.port = port
                self._ready.set()
            if self._on_line is not None:
                self._on_line(name, text)
        self._ready.set()

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT_S)
        self._join()

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if needed; always reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        self._join()

    def _join(self) -> None:
        for t in self._readers:
            t.join(STOP_TIMEOUT_S)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def wait_for(condition: Callable[[], object], timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` until it is truthy; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)
