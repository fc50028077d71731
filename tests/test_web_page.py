"""The lab's web page in Debian's Chromium: a live board over Connect, and a kill button that works.

The page is served by the lab's `web` service and talks to the supervisor, health and logger
services itself, over Connect from the browser (no proxy), with the token from its URL fragment.
Screenshots stay in test-artifacts/web-page/ for a person to look at.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, artifacts_dir, need_browser

from runtime.lab import Lab
from runtime.services.web.servicer import PAGE_DIST

WAIT_MS = 20_000


def _page_url(lab: Lab) -> str:
    row = lab.status().set_index("instance").loc["web-1"]
    return f"http://127.0.0.1:{int(row.http_port)}/"


@pytest.fixture
def lab(lab_factory: Any) -> Lab:
    if not (PAGE_DIST / "index.html").is_file():
        pytest.fail(f"the web page is not built ({PAGE_DIST}): run `make web`", pytrace=False)
    lab: Lab = lab_factory("web")
    lab.wait_for(lambda: (lab.health().state == "HEALTHY").sum() >= 6, 20, "every instance HEALTHY")
    return lab


def test_page_files_are_served_without_a_secret(lab: Lab) -> None:
    url = _page_url(lab)
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200 and "Service Runtime Lab" in resp.read().decode()
        assert resp.headers["content-security-policy"].startswith("default-src 'self'")
    with urllib.request.urlopen(url + "lab.json", timeout=5) as resp:
        endpoints = json.loads(resp.read())
    assert lab.token not in json.dumps(endpoints)
    assert all(endpoints[k].startswith("http://127.0.0.1:") for k in ("supervisor", "health", "logger"))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url + "../../token", timeout=5)
    err.value.close()
    assert err.value.code == 404


def test_cors_allows_the_lab_page_and_no_other_origin(lab: Lab) -> None:
    health_port = int(lab.status().set_index("instance").loc["health-1", "http_port"])
    page_origin = _page_url(lab).rstrip("/")

    def preflight(origin: str) -> tuple[int, str | None]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{health_port}/runtime.v1.HealthService/CheckHealth",
            method="OPTIONS",
            headers={"origin": origin, "access-control-request-method": "POST",
                     "access-control-request-headers": "authorization, content-type"},  # fmt: skip
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.headers.get("access-control-allow-origin")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.headers.get("access-control-allow-origin")

    # The broker lookup behind the origin list is cached briefly: the page's origin is known within it.
    lab.wait_for(lambda: preflight(page_origin) == (204, page_origin), 5, "the page's origin allowed")
    assert preflight("http://127.0.0.1:1") == (403, None)
    assert preflight("http://evil.example") == (403, None)


@pytest.mark.timeout(120)
def test_board_shows_the_lab_and_its_kill_button_works(lab: Lab) -> None:
    sync_api = need_browser()
    expect = sync_api.expect
    shots = artifacts_dir("web-page")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 800})
            page.set_default_timeout(WAIT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(_page_url(lab) + f"#token={lab.token}")
            try:
                expect(page.locator("body[data-ready='1']")).to_have_count(1)
                expect(page.locator("#banner")).to_have_text("live")
                assert "token" not in page.url  # the fragment is dropped from the address bar
                for instance in ("broker-1", "health-1", "logger-1", "calculator-1", "calculator-2", "web-1"):
                    expect(page.locator(f"tr[data-instance='{instance}']")).to_have_attribute("data-health", "HEALTHY")
                page.screenshot(path=str(shots / "board-healthy.png"))

                row = page.locator("tr[data-instance='calculator-1']")
                old_pid = row.locator("td[data-col='pid']").inner_text()
                row.locator("button.kill").click()
                expect(page.locator("#banner")).to_contain_text(f"sent SIGKILL to calculator-1 (pid {old_pid})")
                # UNHEALTHY lasts a fraction of a second (restart_delay_s 0.3): the row's recent
                # states keep it, then HEALTHY again.
                trail = row.locator("td[data-col='trail']")
                expect(trail).to_contain_text("UNHEALTHY")
                page.screenshot(path=str(shots / "board-after-kill.png"))
                expect(trail).to_contain_text("UNHEALTHY → STARTING → HEALTHY")
                expect(row).to_have_attribute("data-health", "HEALTHY")
                expect(row.locator("td[data-col='state']")).to_have_text("RUNNING")
                assert row.locator("td[data-col='pid']").inner_text() != old_pid
                expect(page.locator("#events")).to_contain_text("calculator-1")
                page.screenshot(path=str(shots / "board-recovered.png"))
                assert not errors, errors
            except Exception:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(shots / "failure.png"))
                    Path(shots / "failure.html").write_text(page.content())
                raise
        finally:
            browser.close()
    row = lab.status().set_index("instance").loc["calculator-1"]
    assert row.state == "RUNNING" and int(row.restarts) >= 1
