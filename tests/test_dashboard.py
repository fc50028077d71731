"""`make dashboard` in a browser: Voila serves notebooks/dashboard.ipynb (MissionControl), attached to
a running lab. Debian's Chromium (Playwright) sees "no lab" before the lab starts, then every tile
healthy and both charts drawn (read from the plotly divs in the page), clicks a calculator's kill
button, sees the tile turn red and then green again and the kill marked on the latency chart.
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


# What a chart holds in the page: the plotly div's own data (points per trace, by trace name) and
# what it drew (marker points and line paths in its SVG).
CHART_STATE = """(selector) => {
    const el = document.querySelector(selector);  // the widget's element is the plotly div
    const gd = el && (el.classList.contains('js-plotly-plot') ? el : el.querySelector('.js-plotly-plot'));
    if (!gd || !gd.data) return null;
    const points = {};
    for (const t of gd.data) points[t.name] = (t.x || []).length;
    const drawn = gd.querySelectorAll('.scatterlayer .point').length
        + Array.from(gd.querySelectorAll('.scatterlayer path.js-line'))
            .filter((p) => (p.getAttribute('d') || '').length > 2).length;
    return {points, drawn};
}"""
CHART_S = 30.0  # a live chart fills within a redraw or two (probe twice a second, tick 1 s)


def chart_state(page, selector: str) -> dict:
    return page.evaluate(CHART_STATE, selector) or {}


def expect_chart_drawn(page, selector: str, trace: str, shot: Path) -> dict:
    """Scroll to the chart; wait until its ``trace`` has points in the page and the SVG drew them."""
    # The page's own scrolling: the chart's contents are redrawn every second, so Playwright's
    # element actions (which wait for a stable element) would wait on and on.
    page.evaluate("(s) => document.querySelector(s).scrollIntoView({block: 'center'})", selector)
    deadline = time.monotonic() + CHART_S
    state = chart_state(page, selector)
    while not (state.get("points", {}).get(trace) and state.get("drawn")):
        if time.monotonic() > deadline:
            page.screenshot(path=str(shot))
            raise AssertionError(f"{selector} stayed empty in the page ({trace!r} has no points): {state}")
        page.wait_for_timeout(250)
        state = chart_state(page, selector)
    page.screenshot(path=str(shot))  # the viewport, the chart in its middle
    return state


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
                # Both charts drawn (they stayed blank now and then on a busy machine): the timeline
                # has a row of squares per instance, the latency chart the probe's line.
                timeline = expect_chart_drawn(page, ".mc-timeline", "HEALTHY", shots / "timeline.png")
                assert timeline["points"]["HEALTHY"] >= len(lab.status()), timeline
                expect_chart_drawn(page, ".mc-latency", "probe latency (ms)", shots / "latency.png")
                page.evaluate("() => window.scrollTo(0, 0)")
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
                assert all(colour(page, i) == "green" for i in CALCULATORS)
                # The live charts went on: the kill is a marker on the latency chart.
                expect_chart_drawn(page, ".mc-latency", "kills", shots / "latency-after-kill.png")
                expect_chart_drawn(page, ".mc-timeline", "HEALTHY", shots / "timeline-after-kill.png")
                page.screenshot(path=str(shots / "recovered-green.png"), full_page=True)
            except Exception:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(shots / "failure.png"), full_page=True)
                    (shots / "failure.html").write_text(page.content())
                raise
        finally:
            browser.close()
    events = lab.events("calculator")
    assert ((events.instance == "calculator-1") & (events.event == "EXITED")).any()
