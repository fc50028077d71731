"""`make dashboard` in a browser: Voila serves notebooks/dashboard.ipynb (MissionControl), attached to
a running lab. Debian's Chromium (Playwright) sees "no lab" before the lab starts, then every tile
healthy, clicks a calculator's kill button, sees the tile turn red and then green again.
Screenshots stay in test-artifacts/mission-control/."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, artifacts_dir, need_browser

ROOT = Path(__file__).resolve().parent.parent
VOILA = Path(sys.executable).parent / "voila"
START_S = 60.0
WAIT_MS = 90_000  # the page's kernel imports the runtime and attaches: slow on a busy machine
CALCULATORS = ("calculator-1", "calculator-2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dashboard(lab_dir: Path, tmp_path: Path) -> Iterator[str]:
    """Voila serving the dashboard for the lab in ``lab_dir`` (LAB_DIR); its URL. Stopped after."""
    if not VOILA.exists():
        pytest.fail(f"{VOILA} is missing: pip install -e '.[notebook]' (voila)", pytrace=False)
    port = free_port()
    env = {**os.environ, "LAB_DIR": str(lab_dir)}
    log = (tmp_path / "voila.log").open("wb")
    proc = subprocess.Popen(
        [str(VOILA), "notebooks/dashboard.ipynb", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
         "--ServerApp.port_retries=0"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(
                    f"voila did not serve: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
                )
            time.sleep(0.2)
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # voila and the kernel it started
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # a kernel that outlived its server
        log.close()


def colour(page, instance: str) -> str:
    return page.locator(f".mc-tile[data-instance='{instance}']").get_attribute("data-color") or ""


@pytest.mark.timeout(300)  # two page loads, each a kernel that imports the runtime (slow when busy)
def test_dashboard_shows_the_lab_and_a_kill_turns_a_tile_red_then_green(dashboard: str, lab_factory) -> None:
    sync_api = need_browser()
    expect = sync_api.expect
    expect.set_options(timeout=WAIT_MS)
    shots = artifacts_dir("mission-control")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(WAIT_MS)
            try:
                # No lab yet: the page says so (and starts none).
                page.goto(dashboard, wait_until="commit")
                expect(page.locator(".mc-no-lab")).to_contain_text("No lab is running")
                page.screenshot(path=str(shots / "no-lab.png"))

                lab = lab_factory("mission-control")
                page.goto(dashboard, wait_until="commit")
                tiles = page.locator(".mc-tile")
                expect(tiles).to_have_count(len(lab.status()))
                for instance in lab.status().instance:
                    expect(page.locator(f".mc-tile[data-instance='{instance}']")).to_have_attribute(
                        "data-color", "green"
                    )
                page.wait_for_timeout(2500)  # the charts fill: probe samples, timeline bars
                page.screenshot(path=str(shots / "all-healthy.png"), full_page=True)

                old_pid = int(lab.status().set_index("instance").pid["calculator-1"])
                tile = page.locator(".mc-tile[data-instance='calculator-1']")
                page.locator(".mc-kill-calculator-1").click()
                expect(tile).to_have_attribute("data-color", "red")
                page.screenshot(path=str(shots / "after-kill-red.png"), full_page=True)
                expect(tile).to_have_attribute("data-color", "green")
                new_pid = int(lab.status().set_index("instance").pid["calculator-1"])
                assert new_pid != old_pid
                expect(tile).to_contain_text(f"pid {new_pid}")
                expect(tile).to_contain_text("restarts 1")
                page.wait_for_timeout(1000)
                page.screenshot(path=str(shots / "recovered-green.png"), full_page=True)
                assert all(colour(page, i) == "green" for i in CALCULATORS)
            except Exception:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(shots / "failure.png"), full_page=True)
                    (shots / "failure.html").write_text(page.content())
                raise
        finally:
            browser.close()
    events = lab.events("calculator")
    assert ((events.instance == "calculator-1") & (events.event == "EXITED")).any()
