"""CPU % and RSS per instance, summed over its process tree, sampled about once a second."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable

import psutil

from runtime.supervisor.process import Instance

SAMPLE_EVERY_S = 1.0
MB = 1024 * 1024


class TreeSampler:
    """Keeps psutil.Process objects between samples (cpu_percent needs the previous reading).

    Finding a process's descendants means reading the parent of every process on the machine
    (``psutil.Process.children`` scans /proc each time: ~1.6 ms with 70 processes, far more on a
    shared server). One round reads that table once (``begin_round``) for every instance.
    """

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._seen: set[int] = set()
        self._children: dict[int, list[int]] | None = None

    def begin_round(self) -> None:
        """Read every process's parent once for this round's ``sample`` calls."""
        children: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])  # after "pid (comm)": state, ppid
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(ppid, []).append(int(name))
        self._children = children

    def _descendants(self, root_pid: int) -> list[int]:
        if self._children is None:  # outside a round: psutil's own scan
            return [c.pid for c in self._get(root_pid).children(recursive=True)]
        found, todo = [], list(self._children.get(root_pid, ()))
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(self._children.get(pid, ()))
        return found

    def sample(self, root_pid: int) -> tuple[float, float]:
        """(cpu_percent, rss_mb) of ``root_pid`` and all its descendants."""
        try:
            self._get(root_pid)
            pids = [root_pid, *self._descendants(root_pid)]
        except psutil.Error:
            return 0.0, 0.0
        cpu = rss = 0.0
        for pid in pids:
            try:
                proc = self._get(pid)
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
            self._seen.add(pid)
        return round(cpu, 1), round(rss / MB, 2)

    def end_round(self) -> None:
        """Forget processes not seen since the last round (they exited)."""
        for pid in list(self._procs):
            if pid not in self._seen:
                del self._procs[pid]
        self._seen = set()
        self._children = None

    def _get(self, pid: int) -> psutil.Process:
        proc = self._procs.get(pid)
        if proc is None or not proc.is_running():
            proc = self._procs[pid] = psutil.Process(pid)
        return proc


async def sample_forever(
    instances: Callable[[], Iterable[Instance]], every_s: float = SAMPLE_EVERY_S
) -> None:
    """Update ``cpu_percent``/``rss_mb`` of every live instance from ``instances()`` forever."""
    sampler = TreeSampler()
    while True:
        sampler.begin_round()
        for inst in instances():
            if inst.alive and inst.pid:
                inst.cpu_percent, inst.rss_mb = sampler.sample(inst.pid)
        sampler.end_round()
        await asyncio.sleep(every_s)
