"""The supervisor's lifecycle decisions reach the logger as entries of service "supervisor"."""

from __future__ import annotations

from pathlib import Path

from runtime.lab import Lab

ROOT = Path(__file__).resolve().parent.parent


def test_a_crash_is_told_in_the_logs_by_the_supervisor(lab_dir: Path) -> None:
    lab = Lab.up(lab_dir=lab_dir, config=ROOT / "lab.yaml", linger_s=2)
    try:
        victim = lab.kill("calculator", 2)
        lab.wait_restarted("calculator-2", old_pid=victim["pid"])

        def story() -> list[str]:
            df = lab.logs(service="supervisor", search="calculator-2", limit=200)
            return list(df.message)

        lab.wait_for(lambda: any("calculator-2 READY" in m for m in story()[-3:]), what="READY entry after the crash")
        messages = story()
        exited = [m for m in messages if m.startswith("calculator-2 EXITED") and "SIGKILL" in m]
        assert exited, messages
        after = messages[messages.index(exited[-1]) :]
        assert any("RESTART_SCHEDULED" in m for m in after), after
        levels = lab.logs(service="supervisor", search="EXITED", limit=50).level
        assert set(levels) == {"WARN"}
        # Startup output of every service (its READY line) was forwarded too, once the broker was up.
        assert not lab.logs(service="broker", search="READY").empty
    finally:
        lab.down()
