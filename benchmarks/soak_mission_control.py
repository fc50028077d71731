"""Soak: MissionControl open in a real Jupyter kernel against a live lab; does the kernel's memory stay bounded?

A kernel (ipykernel, started with jupyter_client) starts a lab from tests/labs/mission-control.yaml
in a temporary lab dir, displays MissionControl with the calculator's latency probe, and then the
lab is kept busy the whole time: a calculator killed every KILL_EVERY_S, a short latency fault
every FAULT_EVERY_S, a small load test every LOAD_EVERY_S, a reset every RESET_EVERY_S. This
process reads every message the kernel sends (as a browser would) and samples the kernel's RSS
every SAMPLE_S. At the end the lab goes down and the kernel shuts down.

Verdict: the memory is bounded when the RSS of the last quarter of the run is at most
GROWTH_LIMIT_MB above that of the second quarter (after warm-up). Prints the RSS at start and end.

    .venv/bin/python benchmarks/soak_mission_control.py                 # one hour
    .venv/bin/python benchmarks/soak_mission_control.py --duration 600  # ten minutes
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent
LAB_FILE = ROOT / "tests" / "labs" / "mission-control.yaml"
SAMPLE_S = 10.0
KILL_EVERY_S = 60.0
FAULT_EVERY_S = 90.0
LOAD_EVERY_S = 120.0
RESET_EVERY_S = 600.0
GROWTH_LIMIT_MB = 20.0
EXEC_TIMEOUT_S = 120.0

SETUP = """
import sys; sys.path.insert(0, {root!r})
from runtime import Lab
from calculator.lab import CalculatorLab
from widgets.mission_control import MissionControl
lab = Lab.up(lab_dir={lab_dir!r}, config={config!r}, linger_s=2)
mc = MissionControl(lab, probe=CalculatorLab(lab).latency_probe())
mc.show()
"""
ACTIONS = {
    "kill": "mc.kill('calculator-1'); None",
    "fault": "mc.chaos.duration.value = 10; mc.chaos.params['delay'].value = 200; mc.inject('delay')",
    "load": "lab.load.start('calculator', rps=30, duration_s=10); None",
    "reset": "mc.reset(); None",
}
TEARDOWN = "mc.close(); lab.down()"


class Kernel:
    """One ipykernel, its client, and a thread that reads everything it publishes (like a browser)."""

    def __init__(self) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(ROOT))
        self.client = self.km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.messages = 0
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="soak-iopub", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return int(self.km.provisioner.process.pid)  # type: ignore[union-attr]

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.get_iopub_msg(timeout=0.5)
                self.messages += 1
            except queue.Empty:
                continue

    def run(self, code: str) -> None:
        """Execute ``code`` and wait for its reply; raise with the kernel's traceback on error."""
        msg_id = self.client.execute(code)
        reply = self.client.get_shell_msg(timeout=EXEC_TIMEOUT_S)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.client.get_shell_msg(timeout=EXEC_TIMEOUT_S)
        if reply["content"]["status"] != "ok":
            raise RuntimeError("\n".join(reply["content"].get("traceback", [])) or str(reply["content"]))

    def rss_mb(self) -> float:
        return psutil.Process(self.pid).memory_info().rss / 2**20

    def shutdown(self) -> None:
        self._stop.set()
        self._reader.join(2)
        self.client.stop_channels()
        self.km.shutdown_kernel(now=False)


def soak(duration_s: float) -> bool:
    """Run the soak; prints samples and the verdict; True when memory stayed bounded."""
    with tempfile.TemporaryDirectory(prefix="soak-mc-") as tmp:
        kernel = Kernel()
        samples: list[tuple[float, float]] = []
        try:
            kernel.run(SETUP.format(root=str(ROOT), lab_dir=str(Path(tmp) / "lab"), config=str(LAB_FILE)))
            start = time.monotonic()
            due = {"kill": KILL_EVERY_S, "fault": FAULT_EVERY_S, "load": LOAD_EVERY_S, "reset": RESET_EVERY_S}
            done = dict.fromkeys(due, 0)
            next_sample = 0.0
            while (elapsed := time.monotonic() - start) < duration_s:
                for action, every in due.items():
                    if elapsed >= every * (done[action] + 1):
                        kernel.run(ACTIONS[action])
                        done[action] += 1
                if elapsed >= next_sample:
                    rss = kernel.rss_mb()
                    samples.append((elapsed, rss))
                    print(
                        f"{elapsed:7.0f} s  kernel RSS {rss:7.1f} MB  messages read {kernel.messages}",
                        flush=True,
                    )
                    next_sample += SAMPLE_S
                time.sleep(1.0)
            kernel.run("assert not mc.error_lines or print(list(mc.error_lines))")
            print(f"actions: {done}; MissionControl redraws: see above; messages read {kernel.messages}")
        finally:
            try:
                kernel.run(TEARDOWN)
            finally:
                kernel.shutdown()
    quarter = max(1, len(samples) // 4)
    second = statistics.mean(r for _, r in samples[quarter : 2 * quarter])
    last = statistics.mean(r for _, r in samples[-quarter:])
    bounded = last - second <= GROWTH_LIMIT_MB
    print(
        f"kernel RSS: start {samples[0][1]:.1f} MB, end {samples[-1][1]:.1f} MB, max {max(r for _, r in samples):.1f} MB; "
        f"second-quarter mean {second:.1f} MB, last-quarter mean {last:.1f} MB: "
        f"{'BOUNDED' if bounded else 'GROWING'} (limit +{GROWTH_LIMIT_MB:.0f} MB)"
    )
    return bounded


def main() -> int:
    """Parse arguments, run the soak, exit 0 when memory stayed bounded."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds to run (default 3600)")
    args = parser.parse_args()
    return 0 if soak(args.duration) else 1


if __name__ == "__main__":
    sys.exit(main())
