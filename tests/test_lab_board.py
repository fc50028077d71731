"""The LabBoard widget shows the real lab and its buttons act on it."""

from __future__ import annotations

from widgets.lab_board import LabBoard


def test_board_shows_every_instance_and_kill_restarts_one(lab_factory) -> None:
    lab = lab_factory("small")
    board = LabBoard(lab)
    for inst in ("broker-1", "calculator-1", "calculator-2"):
        assert inst in board.table.value
    assert list(board.instance.options) == ["calculator-1", "calculator-2"]
    assert {t.name for t in board.figure.data} == {"broker-1", "calculator-1", "calculator-2"}
    old_pid = int(lab.status().set_index("instance").loc["calculator-2", "pid"])
    board.instance.value = "calculator-2"
    board.kill_button.click()
    row = lab.wait_restarted("calculator-2", old_pid=old_pid)
    assert row.pid != old_pid
    assert any("sent SIGKILL to calculator-2" in o["text"] for o in board.log.outputs)
    board.refresh()
    assert len(board.figure.data[0].y) >= 2
