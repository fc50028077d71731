"""CPU and RSS per instance, summed over its process tree (runtime/supervisor/metrics.py)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from runtime.supervisor.metrics import TreeSampler

# A child that starts a grandchild, then both sleep; the child prints the grandchild's pid.
TREE = (
    "import subprocess, sys, time; "
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
    "print(g.pid, flush=True); time.sleep(30)"
)


def test_one_round_sums_the_whole_tree_and_drops_what_died() -> None:
    child = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        sampler = TreeSampler()
        sampler.begin_round()
        assert sorted(sampler._descendants(child.pid)) == [grandchild]
        _, rss = sampler.sample(child.pid)
        sampler.end_round()
        expected = sum(psutil.Process(p).memory_info().rss for p in (child.pid, grandchild)) / 2**20
        assert abs(rss - expected) < 0.1 * expected, (rss, expected)
        victim = psutil.Process(grandchild)
        victim.kill()
        # Not our child: it stays a zombie of its parent (which never reaps it), with no memory.
        _, alive = psutil.wait_procs([victim], timeout=0)
        deadline = time.monotonic() + 5
        while alive and victim.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.01)
        sampler.begin_round()
        _, rss_after = sampler.sample(child.pid)
        sampler.end_round()
        assert rss_after < rss
    finally:
        for proc in psutil.Process(child.pid).children(recursive=True):
            proc.kill()
        child.kill()
        child.wait(5)
        if child.stdout is not None:
            child.stdout.close()
