"""The group keeper: kills every lab process group when the daemon dies, even by SIGKILL.

PR_SET_PDEATHSIG reaches a child only, not what the child spawns itself (a shell wrapper's
program, a worker pool). The keeper is a tiny helper process that learns each process group the
daemon starts ("+PGID" / "-PGID" lines on its stdin). The daemon holds the only write end of
that pipe, so when the daemon dies for any reason the keeper reads EOF and SIGKILLs every group
it still knows, then exits. On a clean shutdown the set is empty by then.

It runs as a plain script (``python -S keeper.py LAB_DIR``): no runtime imports, no gRPC.

Example:
    keeper = GroupKeeper(lab_dir)
    keeper.start()
    keeper.add(pid)        # right after spawning a child in its own session
    keeper.remove(pid)     # after its exit was seen and its group killed
    keeper.close()         # daemon exit: the keeper finds EOF and exits
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

KEEPER_STOP_S = 2.0


class GroupKeeper:
    """The daemon's side of the keeper: start it, tell it about groups, close it."""

    def __init__(self, lab_dir: str) -> None:
        self.lab_dir = lab_dir
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the keeper process (in its own session, so no terminal signal reaches it)."""
        self._proc = subprocess.Popen(
            [sys.executable, "-S", os.path.abspath(__file__), self.lab_dir],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The keeper's pid (0 when not started)."""
        return self._proc.pid if self._proc is not None else 0

    def add(self, pgid: int) -> None:
        """Remember process group ``pgid``."""
        self._send(f"+{pgid}\n")

    def remove(self, pgid: int) -> None:
        """Forget process group ``pgid`` (it is gone)."""
        self._send(f"-{pgid}\n")

    def close(self) -> None:
        """Let the keeper exit (EOF) and reap it."""
        if self._proc is None:
            return
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self._proc.wait(timeout=KEEPER_STOP_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def _send(self, line: str) -> None:
        if self._proc is None or self._proc.stdin is None:
            return
        try:
            self._proc.stdin.write(line.encode())
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the keeper is gone; the daemon still stops its groups itself


def _keep(stream: object) -> None:
    groups: set[int] = set()
    for raw in stream:  # type: ignore[attr-defined]
        line = raw.strip()
        if line[:1] == "+":
            groups.add(int(line[1:]))
        elif line[:1] == "-":
            groups.discard(int(line[1:]))
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


if __name__ == "__main__":
    # Stray terminal or group signals must not end the keeper early: only EOF does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _keep(sys.stdin)
