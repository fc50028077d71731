"""Build the polyglot calculator with whatever toolchains this machine has.

    python -m calculator.toolchains build     # what `make polyglot` runs
    python -m calculator.toolchains status    # the table below, as text

==========  ===============================  ==============================================
language    tools                            builds
==========  ===============================  ==============================================
python      the running interpreter          nothing (``python -m calculator.client``)
typescript  node, npm                        ``npm ci`` + ``tsc`` (types) + esbuild -> node/dist/
rust        cargo (protoc comes in a crate)  ``cargo build --release`` -> target/release/
cpp         cmake, c++, pkg-config, protoc,  ``cmake`` + build -> calculator/cpp/build/
            grpc_cpp_plugin, grpc++ (.pc)
==========  ===============================  ==============================================

A build runs only when one of its inputs (sources, manifests, the .proto files) is newer than
its output, so a warm ``make polyglot`` costs a few stat calls. A missing toolchain is not an
error: the build says what to install and the lab skips that client (lab.yaml ``requires:``).
Set ``LAB_REQUIRE_POLYGLOT=1`` (CI) to turn a missing toolchain into a failure.

Only C++ needs system packages (gRPC C++ has no package-registry build). Rust's protoc comes in
the ``protoc-bin-vendored`` crate (calculator/rust/build.rs); TypeScript's protobuf-es code is
committed (calculator/node/src/gen, buf from npm); Python's stubs are committed, and ``make gen`` regenerates
them with protoc from ``grpcio-tools`` (PyPI).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.identity import ENV_REQUIRE_POLYGLOT

ROOT = Path(__file__).resolve().parent.parent
CALC = ROOT / "calculator"
PROTO = ROOT / "proto"
NODE_DIR = CALC / "node"
RUST_DIR = CALC / "rust"
CPP_DIR = CALC / "cpp"
CPP_BUILD = CPP_DIR / "build"
VERSION_TIMEOUT_S = 10.0

# The contracts every non-Python build compiles from.
PROTO_INPUTS = (
    "calculator/v1/calculator.proto",
    "runtime/v1/broker.proto",
    "runtime/v1/health.proto",
    "runtime/v1/common.proto",
)


@dataclass
class Toolchain:
    """One language: the tools it needs, what it builds from what, and how."""

    language: str
    tool: str  # the tool whose version the table shows
    needs: tuple[str, ...]  # executables that must be on PATH
    artifacts: tuple[Path, ...]  # what the lab runs (lab.yaml `requires:`)
    inputs: Callable[[], Iterable[Path]]
    steps: Callable[[], list[tuple[list[str], Path]]]  # (argv, cwd), run in order
    install: str  # what to install when a tool is missing
    extra_check: Callable[[], str] = field(default=lambda: "")  # "" or what is missing
    runtime_deps: tuple[Path, ...] = ()  # must exist too, but are not compared by time

    def missing(self) -> list[str]:
        """Tools (or libraries) this machine lacks for this language."""
        gone = [t for t in self.needs if shutil.which(t) is None]
        if not gone:
            more = self.extra_check()
            if more:
                gone.append(more)
        return gone

    def version(self) -> str:
        return tool_version(self.tool)

    def up_to_date(self) -> bool:
        """Every artifact exists and is newer than every input."""
        if not all(a.exists() for a in (*self.artifacts, *self.runtime_deps)):
            return False
        oldest = min(a.stat().st_mtime for a in self.artifacts)
        return all(p.stat().st_mtime <= oldest for p in self.inputs() if p.exists())


def tool_version(tool: str) -> str:
    """First line of ``<tool> --version`` ("" when it is missing or says nothing)."""
    if tool == "python":
        return sys.version.split()[0]
    path = shutil.which(tool)
    if path is None:
        return ""
    flag = "--version"
    try:
        out = subprocess.run(
            [path, flag], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else ""


def _files(base: Path, patterns: Iterable[str]) -> Iterator[Path]:
    for pattern in patterns:
        yield from base.glob(pattern)


def _protos() -> list[Path]:
    return [PROTO / p for p in PROTO_INPUTS]


def _node_inputs() -> list[Path]:
    return [
        *_files(
            NODE_DIR,
            ["src/**/*.ts", "scripts/bundle.mjs", "tsconfig.json", "package.json", "package-lock.json"],
        ),
        *_protos(),
    ]


def _node_steps() -> list[tuple[list[str], Path]]:
    steps: list[tuple[list[str], Path]] = []
    stamp = NODE_DIR / "node_modules" / ".package-lock.json"  # npm writes it on every install
    lock = NODE_DIR / "package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        steps.append((["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], NODE_DIR))
    steps.append(([str(NODE_DIR / "node_modules" / ".bin" / "tsc"), "-p", "."], NODE_DIR))  # type check
    steps.append((["node", "scripts/bundle.mjs"], NODE_DIR))  # one file each: dist/server.js, client.js
    return steps


def _rust_inputs() -> list[Path]:
    return [*_files(RUST_DIR, ["src/**/*.rs", "build.rs", "Cargo.toml", "Cargo.lock"]), *_protos()]


def _rust_steps() -> list[tuple[list[str], Path]]:
    return [(["cargo", "build", "--release", "--locked", "--quiet"], RUST_DIR)]


def _cpp_inputs() -> list[Path]:
    return [CPP_DIR / "CMakeLists.txt", CPP_DIR / "client.cc", *_protos()]


def _cpp_steps() -> list[tuple[list[str], Path]]:
    steps: list[tuple[list[str], Path]] = []
    if not (CPP_BUILD / "CMakeCache.txt").exists():
        steps.append(
            (["cmake", "-S", str(CPP_DIR), "-B", str(CPP_BUILD), "-DCMAKE_BUILD_TYPE=Release"], ROOT)
        )
    jobs = str(max(1, os.cpu_count() or 1))
    steps.append((["cmake", "--build", str(CPP_BUILD), "--parallel", jobs], ROOT))
    return steps


def _cpp_libraries() -> str:
    if shutil.which("pkg-config") is None:
        return ""
    ok = subprocess.run(["pkg-config", "--exists", "grpc++", "protobuf"], check=False).returncode == 0
    return "" if ok else "grpc++/protobuf development files (pkg-config grpc++ protobuf)"


TOOLCHAINS: tuple[Toolchain, ...] = (
    Toolchain(
        language="python",
        tool="python",
        needs=(),
        artifacts=(),
        inputs=lambda: (),
        steps=lambda: [],
        install="",
    ),
    Toolchain(
        language="typescript",
        tool="node",
        needs=("node", "npm"),
        artifacts=(NODE_DIR / "dist" / "server.js", NODE_DIR / "dist" / "client.js"),
        inputs=_node_inputs,
        steps=_node_steps,
        runtime_deps=(NODE_DIR / "node_modules" / ".package-lock.json",),
        install="Node.js >= 20 with npm (Debian: apt-get install nodejs npm; or https://nodejs.org)",
    ),
    Toolchain(
        language="rust",
        tool="cargo",
        needs=("cargo",),
        artifacts=(RUST_DIR / "target" / "release" / "calculator-client",),
        inputs=_rust_inputs,
        steps=_rust_steps,
        # No protoc here: build.rs takes it from the protoc-bin-vendored crate.
        install="Rust with cargo (https://rustup.rs, or apt-get install cargo)",
    ),
    Toolchain(
        language="cpp",
        tool="cmake",
        needs=("cmake", "c++", "pkg-config", "protoc", "grpc_cpp_plugin"),
        artifacts=(CPP_BUILD / "calculator-client",),
        inputs=_cpp_inputs,
        steps=_cpp_steps,
        install="apt-get install cmake g++ pkg-config libgrpc++-dev libprotobuf-dev protobuf-compiler "
        "protobuf-compiler-grpc",
        extra_check=_cpp_libraries,
    ),
)
BY_LANGUAGE = {t.language: t for t in TOOLCHAINS}


def toolchains_rows() -> list[dict[str, Any]]:
    """One row per language: language, tool, found, version, built, missing, install."""
    rows = []
    for tc in TOOLCHAINS:
        missing = tc.missing()
        rows.append(
            {
                "language": tc.language,
                "tool": tc.tool,
                "found": not missing,
                "version": tc.version() if not missing else "",
                "built": tc.up_to_date() if tc.artifacts else True,
                "missing": ", ".join(missing),
                "install": tc.install if missing else "",
            }
        )
    return rows


def toolchains_frame() -> Any:
    """The toolchains table as a pandas DataFrame (language, tool, found, version, built, ...).

    Example:
        >>> toolchains_frame()[["language", "found", "built"]]  # doctest: +SKIP
    """
    import pandas as pd  # only the notebook path pays for pandas

    return pd.DataFrame(
        toolchains_rows(), columns=["language", "tool", "found", "version", "built", "missing", "install"]
    )


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    # Two builds of one checkout at once (a notebook and `make`) would trample each other's output.
    key = hashlib.sha1(str(ROOT).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"runtime-lab-polyglot-{key}.lock"
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_one(tc: Toolchain, *, force: bool = False, out: Any = sys.stdout) -> str:
    """Build one language if needed; returns "built", "up to date", "missing" or "failed"."""
    missing = tc.missing()
    if missing:
        print(f"{tc.language:<10} skipped: missing {', '.join(missing)}; install {tc.install}", file=out)
        return "missing"
    if not tc.artifacts:
        print(f"{tc.language:<10} nothing to build ({tc.version()})", file=out)
        return "up to date"
    if tc.up_to_date() and not force:
        print(f"{tc.language:<10} up to date", file=out)
        return "up to date"
    started = time.monotonic()
    for argv, cwd in tc.steps():
        print(f"{tc.language:<10} $ {' '.join(argv)}", file=out, flush=True)
        done = subprocess.run(argv, cwd=cwd, check=False)
        if done.returncode != 0:
            print(f"{tc.language:<10} FAILED: {' '.join(argv)} exited with {done.returncode}", file=out)
            return "failed"
    for artifact in tc.artifacts:
        artifact.touch()  # a no-op rebuild (cargo, make) may leave the old mtime
    print(f"{tc.language:<10} built in {time.monotonic() - started:.1f} s", file=out)
    return "built"


def build(languages: Iterable[str] = (), *, force: bool = False, out: Any = sys.stdout) -> dict[str, str]:
    """Build every language (or the given ones) whose toolchain is here; returns language -> outcome."""
    wanted = list(languages) or [tc.language for tc in TOOLCHAINS]
    unknown = [lang for lang in wanted if lang not in BY_LANGUAGE]
    if unknown:
        raise ValueError(f"unknown language(s) {unknown}; known: {sorted(BY_LANGUAGE)}")
    with _build_lock():
        return {lang: build_one(BY_LANGUAGE[lang], force=force, out=out) for lang in wanted}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m calculator.toolchains", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build every client/server whose toolchain exists")
    b.add_argument("languages", nargs="*", help="only these (python, typescript, rust, cpp)")
    b.add_argument("--force", action="store_true", help="rebuild even when up to date")
    sub.add_parser("status", help="print the toolchains table")
    args = parser.parse_args(argv)
    if args.command == "status":
        for row in toolchains_rows():
            print("  ".join(f"{k}={v}" for k, v in row.items() if v != ""))
        return 0
    outcomes = build(args.languages, force=args.force)
    if "failed" in outcomes.values():
        return 1
    if os.environ.get(ENV_REQUIRE_POLYGLOT) == "1" and "missing" in outcomes.values():
        print(f"{ENV_REQUIRE_POLYGLOT}=1: every toolchain is required here", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
