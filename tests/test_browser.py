"""What a learner sees: JupyterLab (started like `make lab`) renders the lab's widgets in a real browser.

The test starts `jupyter lab` on notebooks/ exactly as the Makefile's `lab` target does (own port,
own token, Jupyter config/data/runtime dirs under tmp_path so nothing of the user's is read or
written), opens notebooks/01-lifecycle.ipynb in headless Chromium through Playwright, runs its first
code cells with Shift+Enter (Lab.up, the status table, the LabBoard) and asserts that the board is
*rendered*: the HTML process table with calculator-1, the "Send signal" button and the plotly
chart, not the plain-text "VBox(...)" repr shown when the widget extension is missing. Then it
picks calculator-1 and presses "Send signal": the board must show the log line and the row back
RUNNING with restarts 1 and a new pid (browser -> kernel -> lab -> kernel -> browser).

The notebook runs unmodified, but its lab lives under tmp_path: the server (and so the kernel)
gets LAB_PROJECT_ROOT pointing at a folder whose lab.yaml is a symlink to the real one, so
`Lab.up()` keeps its state in <tmp>/project/.lab while services run from the real project root
(the folder of the resolved lab.yaml). The shared <project>/.lab is left alone: notebooks run
under nbval at the same time use it and stop it with `lab.down()`, which would kill this test's
lab (and this test's cleanup theirs). The autouse leak check covers tmp_path directly. At the end
the test stops the lab with `runtime-lab --lab-dir ... down`, deletes the kernel session and stops
the Jupyter server by pid. Autosave is off and the notebook file must be byte-identical afterwards.

Needs Debian's /usr/bin/chromium (Playwright's browser download is not used). Missing browser:
skipped locally, a failure in CI (CI=true), where .ci/run installs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, need_browser
from leaks import lab_processes

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK = "01-lifecycle.ipynb"
BIN = Path(sys.executable).parent  # the venv's bin: jupyter, runtime-lab

SERVER_START_S = 30.0
KERNEL_START_S = 30.0
LAB_UP_S = 45.0  # Lab.up() waits up to 30 s for every service itself
BOARD_S = 45.0  # the board cell's first FigureWidget imports plotly.io -> nbformat -> jsonschema: ~5-10 s
WIDGET_S = 20.0
STOP_S = 10.0

# Fresh JupyterLab user settings: no autosave (the notebook under test is a tracked file) and no
# news/update check (no network, no notification popping over the notebook).
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token_option(token: str) -> str:
    """jupyter_server 2 moved the token to the IdentityProvider; older ones keep it on ServerApp."""
    import jupyter_server

    major = int(jupyter_server.__version__.split(".")[0])
    return f"--IdentityProvider.token={token}" if major >= 2 else f"--ServerApp.token={token}"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Server:
    """A `jupyter lab` process of this test, talked to over its REST API with the token."""

    def __init__(self, tmp: Path, extra_env: dict[str, str]) -> None:
        self.port = _free_port()
        self.token = secrets.token_hex(24)
        self.base = f"http://127.0.0.1:{self.port}"
        jdir = tmp / "jupyter"
        settings = jdir / "config" / "lab" / "user-settings"
        for rel, values in LAB_SETTINGS.items():
            (settings / rel).parent.mkdir(parents=True, exist_ok=True)
            (settings / rel).write_text(json.dumps(values))
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(jdir / "config"),
            JUPYTER_DATA_DIR=str(jdir / "data"),
            JUPYTER_RUNTIME_DIR=str(jdir / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(jdir / "config" / "lab" / "workspaces"),
            IPYTHONDIR=str(jdir / "ipython"),
        )
        env.update(extra_env)
        self.log_path = tmp / "jupyter-lab.log"
        self._log = self.log_path.open("wb")
        # The Makefile's `lab` target, on our own port and token. `--notebook-dir` is jupyter_server's
        # alias of --ServerApp.root_dir (giving both is an error), relative to the project root.
        cmd = [
            str(BIN / "jupyter"),
            "lab",
            "--notebook-dir=notebooks",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            _token_option(self.token),
        ]
        if os.geteuid() == 0:  # CI runs as root; jupyter refuses root without this
            cmd.append("--allow-root")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log_tail(self, n: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def api(self, method: str, path: str) -> Any:
        req = urllib.request.Request(
            self.base + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}", pytrace=False
                )
            try:
                self.api("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        pytest.fail(
            f"jupyter lab did not answer within {SERVER_START_S} s:\n{self.log_tail()}", pytrace=False
        )

    def wait_kernel_idle(self, notebook: str) -> dict[str, Any]:
        """The session JupyterLab opened for `notebook`, once its kernel is idle."""
        deadline = time.monotonic() + KERNEL_START_S
        sessions: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            sessions = self.api("GET", "/api/sessions")
            for s in sessions:
                if s["path"].endswith(notebook) and s["kernel"]["execution_state"] == "idle":
                    return s
            time.sleep(0.2)
        pytest.fail(f"no idle kernel for {notebook} within {KERNEL_START_S} s: {sessions}", pytrace=False)

    def delete_sessions(self) -> None:
        """Shut every kernel of this (private) server down."""
        for s in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{s['id']}")

    def stop(self) -> None:
        """SIGTERM by pid (jupyter shuts its kernels down), SIGKILL if it does not go."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_S)
        self._log.close()


@contextlib.contextmanager
def jupyter_lab(tmp: Path, extra_env: dict[str, str]) -> Iterator[Server]:
    server = Server(tmp, extra_env)
    try:
        server.wait_ready()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.delete_sessions()  # the kernel goes, and with it its lease on the lab
        server.stop()


def _isolated_project(tmp: Path) -> Path:
    """A project root for LAB_PROJECT_ROOT: only lab.yaml, a symlink to the real one."""
    project = tmp / "project"
    project.mkdir()
    (project / "lab.yaml").symlink_to(ROOT / "lab.yaml")
    return project.resolve()


def _lab_down(lab_dir: Path) -> None:
    """Stop the lab the notebook started, and prove it is gone."""
    subprocess.run(
        [str(BIN / "runtime-lab"), "--lab-dir", str(lab_dir), "down"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,  # "not running" is fine: the check below is what counts
    )
    deadline = time.monotonic() + STOP_S
    while (left := lab_processes([str(lab_dir)])) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"lab processes left in {lab_dir}: {[p.pid for p in left]}"


def _run_cells_and_check_board(page: Any, server: Server, expect: Any, lab_dir: Path, shots: Path) -> None:
    """Open the notebook, run Lab.up / status / LabBoard with Shift+Enter, check what is drawn."""
    page.goto(f"{server.base}/lab/tree/{NOTEBOOK}?token={server.token}", timeout=30_000)
    cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    expect(cells.first).to_be_visible(timeout=30_000)
    server.wait_kernel_idle(NOTEBOOK)
    # The browser's own view of the kernel: the notebook toolbar's execution indicator says idle.
    expect(page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator")).to_have_attribute(
        "data-status", "idle", timeout=KERNEL_START_S * 1000
    )

    # Run the first three code cells as a learner does: select the cell, Shift+Enter.
    up_cell, status_cell, board_cell = cells.nth(1), cells.nth(3), cells.nth(5)
    expect(up_cell).to_contain_text("Lab.up()")
    expect(status_cell).to_contain_text("lab.status()")
    expect(board_cell).to_contain_text("LabBoard(lab)")
    for cell in (up_cell, status_cell, board_cell):
        cell.locator(".jp-InputPrompt").click()
        page.keyboard.press("Shift+Enter")

    expect(up_cell.locator(".jp-Cell-outputArea")).to_contain_text(
        f"<Lab {lab_dir} ", timeout=LAB_UP_S * 1000
    )
    expect(status_cell.locator(".jp-Cell-outputArea table")).to_contain_text("calculator-1")

    out = board_cell.locator(".jp-Cell-outputArea")
    # Rendered by the widget manager, not the text fallback of a missing widget extension.
    board = out.locator(
        ":scope > .jp-OutputArea-child > .jp-OutputArea-output > .jupyter-widgets.widget-vbox"
    )
    expect(board).to_be_visible(timeout=BOARD_S * 1000)
    table = out.locator(".widget-html table")
    row = table.locator("tr", has_text="calculator-1")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("RUNNING")
    send = out.locator("button", has_text="Send signal")
    expect(send).to_be_visible()
    expect(out.locator("button", has_text="Restart")).to_be_visible()
    plot = out.locator(".js-plotly-plot")
    expect(plot).to_be_visible()
    expect(plot.locator("svg.main-svg").first).to_be_visible()
    expect(plot.locator(".gtitle")).to_contain_text("RSS per instance")
    expect(plot.locator(".legendtext", has_text="calculator-1")).to_have_count(1)
    text = out.inner_text()
    for fallback in ("VBox(", "LabBoard(", "FigureWidget(", "Loading widget"):
        assert fallback not in text, f"widget not rendered, output shows {fallback!r}:\n{text}"
    board_cell.scroll_into_view_if_needed()
    out.screenshot(path=str(shots / "lab-board.png"))

    # The board is live: pick calculator-1, press Send signal (SIGKILL), and the kernel's answer
    # comes back through the widgets: a log line, then the row restarted with a new pid.
    old_pid = row.locator("td").nth(2).inner_text()
    out.locator(".widget-dropdown", has_text="instance").locator("select").select_option("calculator-1")
    send.click()
    expect(out).to_contain_text(f"sent SIGKILL to calculator-1 (pid {old_pid})")
    expect(row.locator("td").nth(4)).to_have_text("1")  # restarts
    expect(row.locator("td").nth(3)).to_have_text("RUNNING")
    assert row.locator("td").nth(2).inner_text() != old_pid
    out.screenshot(path=str(shots / "lab-board-after-kill.png"))
    page.screenshot(path=str(shots / "jupyterlab.png"))


@pytest.mark.timeout(120)
def test_lifecycle_notebook_renders_lab_board_in_browser(tmp_path: Path) -> None:
    sync_api = need_browser()
    nb_path = NOTEBOOKS / NOTEBOOK
    nb_before = _digest(nb_path)
    # JupyterLab checkpoints a notebook when it opens it: remove what this test created, only that.
    checkpoints = NOTEBOOKS / ".ipynb_checkpoints"
    checkpoint = checkpoints / NOTEBOOK.replace(".ipynb", "-checkpoint.ipynb")
    had_checkpoints, had_checkpoint = checkpoints.exists(), checkpoint.exists()
    project = _isolated_project(tmp_path)
    lab_dir = project / ".lab"
    t0 = time.monotonic()
    try:
        with (
            jupyter_lab(tmp_path, {"LAB_PROJECT_ROOT": str(project)}) as server,
            sync_api.sync_playwright() as pw,
            (tmp_path / "browser-console.log").open("w", buffering=1) as console,
        ):
            # It serves the lab's notebooks, from notebooks/ as its root.
            listed = {f["name"] for f in server.api("GET", "/api/contents")["content"]}
            assert {"00-setup-check.ipynb", NOTEBOOK} <= listed, listed
            browser = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),  # a fresh profile
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000},
                timeout=30_000,
            )
            try:
                page = browser.pages[0] if browser.pages else browser.new_page()
                page.set_default_timeout(WIDGET_S * 1000)
                page.on("console", lambda m: console.write(f"{m.type}: {m.text}\n"))
                page.on("pageerror", lambda e: console.write(f"pageerror: {e}\n"))
                try:
                    _run_cells_and_check_board(page, server, sync_api.expect, lab_dir, tmp_path)
                except Exception:
                    with contextlib.suppress(Exception):  # what the browser showed, for the report
                        page.screenshot(path=str(tmp_path / "failure.png"))
                        board_out = (
                            page.locator(".jp-NotebookPanel .jp-Cell").nth(5).locator(".jp-Cell-outputArea")
                        )
                        board_out.screenshot(path=str(tmp_path / "failure-board.png"), timeout=5_000)
                        (tmp_path / "failure.html").write_text(page.content())
                    raise
            finally:
                browser.close()
    finally:
        _lab_down(lab_dir)
        if not had_checkpoint:
            checkpoint.unlink(missing_ok=True)
        if not had_checkpoints:
            with contextlib.suppress(OSError):
                checkpoints.rmdir()  # only if empty
    assert _digest(nb_path) == nb_before, f"{nb_path} was modified by the browser session"
    elapsed = time.monotonic() - t0
    assert elapsed < 90, f"browser test took {elapsed:.0f} s (budget: under 60 s)"
