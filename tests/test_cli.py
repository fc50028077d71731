"""`runtime-lab` from a terminal: up, status, events, top, down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from runtime.lab import launcher

SMALL = Path(__file__).parent / "labs" / "small.yaml"
ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_up_status_events_top_down(lab_dir: Path) -> None:
    up = cli("up", "--lab-dir", str(lab_dir), "--config", str(SMALL))  # the option after the command
    assert up.returncode == 0, up.stderr
    assert "calculator-2" in up.stdout and "runtime-lab down" in up.stdout
    info = launcher.read_info(lab_dir)
    assert info is not None and launcher.pid_alive(info.pid)
    try:
        status = cli("--lab-dir", str(lab_dir), "status", "--json")
        rows = json.loads(status.stdout)
        assert {r["instance"]: r["state"] for r in rows} == {
            "broker-1": "RUNNING",
            "calculator-1": "RUNNING",
            "calculator-2": "RUNNING",
        }
        events = cli("--lab-dir", str(lab_dir), "events")
        assert "READY" in events.stdout and "calculator-1" in events.stdout
        top = cli("--lab-dir", str(lab_dir), "top", "--batch", "-n", "1")
        assert top.returncode == 0 and "INSTANCE" in top.stdout and "recent events" in top.stdout
    finally:
        down = cli("--lab-dir", str(lab_dir), "down")
    assert down.returncode == 0, down.stderr
    assert not launcher.pid_alive(info.pid)


def test_commands_on_a_lab_that_is_not_running_say_how_to_start_it(lab_dir: Path) -> None:
    out = cli("--lab-dir", str(lab_dir), "status")
    assert out.returncode == 1
    assert "no lab is running" in out.stderr and "runtime-lab up" in out.stderr
