"""Polyglot builds and parsing without running a lab: tsc, toolchains, job output (generated TS: test_generated)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from calculator import toolchains
from calculator.lab import json_lines, number_arg, parse_client_output
from runtime.errors import ClientError, UsageError

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "calculator" / "node"
TSC_TIMEOUT_S = 90
RUST_COLD_BUILD_TIMEOUT_S = 600  # a cold build of tonic + tokio takes ~45 s on 2 idle cores


def _need_node_modules() -> None:
    if shutil.which("node") is None or not (NODE / "node_modules" / ".bin" / "tsc").exists():
        reason = "node or calculator/node/node_modules missing; run `make polyglot`"
        if os.environ.get("CI") or os.environ.get("LAB_REQUIRE_POLYGLOT") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.mark.polyglot
def test_typescript_typechecks() -> None:
    _need_node_modules()
    done = subprocess.run(
        [str(NODE / "node_modules" / ".bin" / "tsc"), "-p", ".", "--noEmit"],
        cwd=NODE,
        capture_output=True,
        text=True,
        timeout=TSC_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_toolchains_table_has_every_language() -> None:
    rows = toolchains.toolchains_rows()
    assert [r["language"] for r in rows] == ["python", "typescript", "rust", "cpp"]
    python = rows[0]
    assert python["found"] and python["built"] and python["version"]
    for row in rows:
        assert row["found"] == (row["missing"] == "")
        if not row["found"]:
            assert row["install"], row  # a missing toolchain says what to install
    frame = toolchains.toolchains_frame()
    assert list(frame.columns)[:5] == ["language", "tool", "found", "version", "built"]


def test_build_reports_missing_toolchain_with_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(toolchains.shutil, "which", lambda _name: None)
    out = io.StringIO()
    outcome = toolchains.build_one(toolchains.BY_LANGUAGE["cpp"], out=out)
    assert outcome == "missing"
    assert "apt-get install" in out.getvalue() and "cmake" in out.getvalue()


def test_build_skips_up_to_date_builds() -> None:
    """A warm `make polyglot` only compares file times."""
    import io

    for tc in toolchains.TOOLCHAINS:
        if not tc.missing() and tc.artifacts and tc.up_to_date():
            out = io.StringIO()
            assert toolchains.build_one(tc, out=out) == "up to date"
            assert "$" not in out.getvalue()  # no command was run


def test_unknown_language_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown language"):
        toolchains.build(["cobol"])


def test_only_cpp_needs_system_protoc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rust takes protoc from a crate, so a machine without Debian's protoc still builds it."""
    real_which = shutil.which
    monkeypatch.setattr(
        toolchains.shutil, "which", lambda name: None if name.startswith("protoc") else real_which(name)
    )
    monkeypatch.delenv("PROTOC", raising=False)
    rust = toolchains.BY_LANGUAGE["rust"]
    assert "protoc" not in rust.needs and not any("protoc" in m for m in rust.missing())
    assert "protobuf" not in rust.install
    assert "protoc" in toolchains.BY_LANGUAGE["cpp"].missing()


def _path_without_protoc(shims: Path) -> str:
    """$PATH with every directory that holds a protoc replaced by a copy (symlinks) without it."""
    dirs: list[str] = []
    for i, entry in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        d = Path(entry)
        if not d.is_dir() or not any(d.glob("protoc*")):
            dirs.append(entry)
            continue
        shim = shims / str(i)
        shim.mkdir(parents=True)
        for tool in d.iterdir():
            if not tool.name.startswith("protoc"):
                (shim / tool.name).symlink_to(tool)
        dirs.append(str(shim))
    return os.pathsep.join(dirs)


@pytest.mark.polyglot
@pytest.mark.timeout(RUST_COLD_BUILD_TIMEOUT_S + 30)
def test_rust_client_builds_without_system_protoc(tmp_path: Path) -> None:
    """A cold `cargo build --release --locked` with no protoc on PATH and no $PROTOC succeeds.

    CI installs Debian's protoc for C++, so only a build that hides it proves a fresh machine
    needs no system package for Rust. Own target dir: the lab's binary is left alone.
    """
    if shutil.which("cargo") is None:
        reason = "cargo missing; install Rust (https://rustup.rs)"
        if os.environ.get("CI") or os.environ.get("LAB_REQUIRE_POLYGLOT") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    cargo = shutil.which("cargo")
    env = {k: v for k, v in os.environ.items() if k != "PROTOC"}
    env["PATH"] = _path_without_protoc(tmp_path / "shims")
    env["CARGO_TARGET_DIR"] = str(tmp_path / "target")
    assert shutil.which("protoc", path=env["PATH"]) is None
    done = subprocess.run(
        [str(cargo), "build", "--release", "--locked", "--quiet"],
        cwd=ROOT / "calculator" / "rust",
        env=env,
        capture_output=True,
        text=True,
        timeout=RUST_COLD_BUILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "target" / "release" / "calculator-client").is_file()


# -- the client output contract, parsed ----------------------------------------------------------


def _line(**kw: object) -> str:
    base = {"ts": 1, "level": "INFO", "message": "", "correlation_id": "req-1", "service": "client-rust"}
    return json.dumps({**base, **kw})


def test_parse_success() -> None:
    served = {"instance_id": "calculator-ts-1", "language": "typescript", "service_name": "calculator-ts"}
    stdout = "\n".join(
        [
            _line(message="Calling Add(2,3)"),
            "a stray non-JSON line",
            _line(message="Result: 5", result=5, served_by=served, elapsed_ms=3.5),
            _line(message="rust client called typescript server"),
        ]
    )
    got = parse_client_output("rust", 0, stdout, job_elapsed_ms=12.25)
    assert got == {
        "value": 5,
        "instance": "calculator-ts-1",
        "server_language": "typescript",
        "elapsed_ms": 12.25,
        "call_ms": 3.5,
        "correlation_id": "req-1",
        "client_language": "rust",
    }


def test_parse_error_carries_the_grpc_status() -> None:
    stdout = _line(level="ERROR", message="INVALID_ARGUMENT: division by zero", grpc_code="INVALID_ARGUMENT")
    with pytest.raises(ClientError) as info:
        parse_client_output("cpp", 1, stdout)
    assert info.value.code == "INVALID_ARGUMENT"
    assert "division by zero" in str(info.value) and "cpp client" in str(info.value)


def test_parse_no_output_names_the_exit_code() -> None:
    with pytest.raises(ClientError, match="exited with code 127"):
        parse_client_output("typescript", 127, "", "node: not found")


def test_json_lines_skips_garbage() -> None:
    assert json_lines('READY port=1\n{"a": 1}\n{broken\n[1]\n') == [{"a": 1}]


@pytest.mark.parametrize(("x", "text"), [(2, "2"), (2.0, "2"), (-4, "-4"), (2.5, "2.5"), (0.1, "0.1")])
def test_number_arg(x: float, text: str) -> None:
    assert number_arg(x) == text


def test_number_arg_rejects_non_numbers() -> None:
    with pytest.raises(UsageError, match="operands must be numbers"):
        number_arg("2")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="finite"):
        number_arg(float("nan"))
