"""`runtime-lab top`, the Textual app, driven headless by Textual's pilot against a real lab."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, RichLog

from runtime.lab import Lab
from runtime.top import TopApp

LAB_FILE = Path(__file__).parent / "labs" / "top.yaml"
WAIT_S = 20.0


@pytest.fixture
def lab(lab_dir: Path) -> Iterator[Lab]:
    lab = Lab.up(lab_dir=lab_dir, config=LAB_FILE, linger_s=1)
    try:
        yield lab
    finally:
        lab.down()


async def _until(pilot: Pilot, condition: Callable[[], object], what: str) -> None:
    """Let the app run until ``condition()`` is true (the app's own threads do the work)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"waited {WAIT_S:.0f} s for {what}")
        await pilot.pause(0.1)


def _select(app: TopApp, instance: str) -> None:
    table = app.query_one("#processes", DataTable)
    table.move_cursor(row=table.get_row_index(instance))


def _cell(app: TopApp, instance: str, column: str) -> str:
    return str(app.query_one("#processes", DataTable).get_cell(instance, column))


def test_kill_key_restarts_the_selected_instance_and_the_table_follows(lab: Lab) -> None:
    old_pid = int(lab.status().set_index("instance").loc["calculator-1", "pid"])

    async def scenario() -> None:
        app = TopApp(lab)
        async with app.run_test(size=(140, 40)) as pilot:
            await _until(pilot, lambda: "calculator-2" in app.rows, "the process table")
            await _until(pilot, lambda: _cell(app, "calculator-1", "health") == "HEALTHY", "health column")
            _select(app, "calculator-1")
            await pilot.press("k")
            # The event stream shows the kill and the restart; the table gets the new pid.
            await _until(
                pilot,
                lambda: _cell(app, "calculator-1", "pid") not in ("", str(old_pid))
                and _cell(app, "calculator-1", "state") == "RUNNING",
                "calculator-1 running again under a new pid",
            )
            events = "\n".join(line.text for line in app.query_one("#events", RichLog).lines)
            assert "calculator-1" in events and "SIGKILL" in events
            # The log pane follows the selected service through the logger.
            await _until(
                pilot,
                lambda: any("calculator-" in line.text for line in app.query_one("#logs", RichLog).lines),
                "calculator log lines in the log pane",
            )

    asyncio.run(scenario())
    row = lab.status().set_index("instance").loc["calculator-1"]
    assert row.state == "RUNNING" and int(row.pid) != old_pid and int(row.restarts) >= 1


def test_freeze_thaw_and_scale_keys(lab: Lab) -> None:
    async def scenario() -> None:
        app = TopApp(lab)
        async with app.run_test(size=(140, 40)) as pilot:
            await _until(pilot, lambda: "calculator-2" in app.rows, "the process table")
            _select(app, "calculator-2")
            await pilot.press("f")
            await _until(pilot, lambda: _cell(app, "calculator-2", "state") == "FROZEN", "FROZEN in the table")
            pid = int(lab.status().set_index("instance").loc["calculator-2", "pid"])
            assert Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "T"  # really stopped
            await pilot.press("f")
            await _until(pilot, lambda: _cell(app, "calculator-2", "state") == "RUNNING", "thawed")
            assert Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "T"
            await pilot.press("plus")
            await _until(pilot, lambda: "calculator-3" in app.rows, "a third calculator after +")
            _select(app, "calculator-3")
            await pilot.press("minus")
            await _until(pilot, lambda: "calculator-3" not in app.rows, "back to two after -")

    asyncio.run(scenario())
    assert sorted(lab.status().query("service == 'calculator'").instance) == ["calculator-1", "calculator-2"]
