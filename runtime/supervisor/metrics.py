"""CPU % and RSS per instance, summed over its process tree, sampled about once a second."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import psutil

from runtime.supervisor.process import Instance

SAMPLE_EVERY_S = 1.0
MB = 1024 * 1024


class TreeSampler:
    """Keeps psutil.Process objects between samples (cpu_percent needs the previous reading)."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._seen: set[int] = set()

    def sample(self, root_pid: int) -> tuple[float, float]:
        """(cpu_percent, rss_mb) of ``root_pid`` and all its descendants."""
        try:
            root = self._get(root_pid)
            pids = [root_pid, *(c.pid for c in root.children(recursive=True))]
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
        for inst in instances():
            if inst.alive and inst.pid:
                inst.cpu_percent, inst.rss_mb = sampler.sample(inst.pid)
        sampler.end_round()
        await asyncio.sleep(every_s)
