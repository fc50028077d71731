"""The polyglot calculator under the real supervisor: CalculatorLab.run_client and a TS server crash."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from waiting import wait_until

from calculator import lab as calculator_lab
from calculator.lab import CalculatorLab
from runtime import Lab
from runtime.errors import ClientError, UsageError

pytestmark = pytest.mark.polyglot

ROOT = Path(__file__).resolve().parent.parent
TS_SERVER = ROOT / "calculator" / "node" / "dist" / "server.js"
RUST_CLIENT = ROOT / "calculator" / "rust" / "target" / "release" / "calculator-client"
CPP_CLIENT = ROOT / "calculator" / "cpp" / "build" / "calculator-client"
TS_CLIENT = ROOT / "calculator" / "node" / "dist" / "client.js"
GHOST = "/nonexistent/ghost-client"  # a job whose build is missing (tests/labs/polyglot.yaml)
RECOVER_TIMEOUT_S = 15.0


@pytest.fixture
def ts_lab(lab_factory) -> Lab:
    node = shutil.which("node")
    if node is None or not TS_SERVER.exists():
        reason = (
            "the TypeScript server is not built (node or calculator/node/dist missing); run `make polyglot`"
        )
        if os.environ.get("CI") or os.environ.get("LAB_REQUIRE_POLYGLOT") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    lab = lab_factory("polyglot", linger_s=5, timeout_s=60, NODE=node)
    # READY comes before the registration at the broker (as with the Python agent): wait for it.
    lab.wait_for(lambda: _ts_instance(lab)[0], timeout_s=RECOVER_TIMEOUT_S, what="calculator-ts-1 registered")
    return lab


def _built_clients() -> list[str]:
    out = ["python"]
    out += ["typescript"] if TS_CLIENT.exists() else []
    out += ["rust"] if RUST_CLIENT.exists() else []
    out += ["cpp"] if CPP_CLIENT.exists() else []
    return out


def _ts_instance(lab: Lab) -> tuple[int, str]:
    rows = lab.lookup("calculator.v1.CalculatorService")
    ts = rows[rows["instance"] == "calculator-ts-1"] if "instance" in rows else rows.iloc[0:0]
    if ts.empty:
        return 0, ""
    return int(ts.iloc[0]["pid"]), str(ts.iloc[0]["address"])


def test_run_client_through_the_supervisor(ts_lab: Lab) -> None:
    for language in _built_clients():
        got = CalculatorLab(ts_lab).run_client(language, "multiply", 2.5, 4, correlation_id=f"req-lab-{language}")
        assert got["value"] == 10, got
        assert got["server_language"] == "typescript" and got["instance"] == "calculator-ts-1", got
        assert got["client_language"] == language and got["correlation_id"] == f"req-lab-{language}"
        assert got["elapsed_ms"] > 0
    with pytest.raises(ClientError) as info:
        CalculatorLab(ts_lab).run_client("python" if len(_built_clients()) == 1 else _built_clients()[-1], "divide", 1, 0)
    assert info.value.code == "INVALID_ARGUMENT" and "division by zero" in str(info.value)
    with pytest.raises(UsageError, match="unknown client language"):
        CalculatorLab(ts_lab).run_client("cobol", "add", 1, 2)
    with pytest.raises(UsageError, match="operands must be numbers"):
        CalculatorLab(ts_lab).run_client("python", "add", "2", 3)


def test_typescript_server_killed_is_restarted_and_reregistered(ts_lab: Lab) -> None:
    old_pid, _ = _ts_instance(ts_lab)
    assert old_pid, ts_lab.lookup("calculator")
    killed = ts_lab.kill("calculator-ts", signal="SIGKILL")
    assert killed["pid"] == old_pid
    wait_until(
        lambda: (pid := _ts_instance(ts_lab)[0]) != old_pid and pid,
        RECOVER_TIMEOUT_S,
        "calculator-ts-1 re-registered under a new pid",
    )
    status = ts_lab.status("calculator-ts")
    assert int(status.iloc[0]["restarts"]) >= 1
    language = "rust" if RUST_CLIENT.exists() else "python"
    got = CalculatorLab(ts_lab).run_client(language, "add", 2, 3)
    assert got["value"] == 5 and got["server_language"] == "typescript", got


def test_job_that_is_not_built_says_so(ts_lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """lab.yaml `requires:` a missing binary: a ClientError naming it and the build hint, no crash."""
    monkeypatch.setattr(calculator_lab, "LANGUAGES", (*calculator_lab.LANGUAGES, "ghost"))
    with pytest.raises(ClientError) as info:
        CalculatorLab(ts_lab).run_client("ghost", "add", 1, 2)
    assert info.value.code == "FAILED_PRECONDITION"
    assert GHOST in str(info.value) and "make polyglot" in str(info.value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
