"""Regenerate the Python code for every .proto contract (the one script that does it).

    python proto/generate.py            # write runtime/v1/*_pb2*.py and calculator/v1/*_pb2*.py
    python proto/generate.py --out DIR  # write into DIR instead (the staleness test uses this)

Because the proto packages are `runtime.v1` and `calculator.v1`, protoc writes straight into the
`runtime` and `calculator` Python packages and cross-file imports resolve. The output is
committed and marked DO NOT EDIT by protoc itself; tests/test_generated.py fails when it is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PROTO_ROOT.parent
PACKAGES = ("runtime/v1", "calculator/v1")


def proto_files() -> list[str]:
    """Every contract, relative to proto/, in a stable order."""
    return sorted(str(p.relative_to(PROTO_ROOT)) for pkg in PACKAGES for p in (PROTO_ROOT / pkg).glob("*.proto"))


def generate(out: Path) -> None:
    """Run protoc (from grpcio-tools) over every contract into `out`."""
    from grpc_tools import protoc  # dev dependency, pinned in pyproject.toml

    for pkg in PACKAGES:
        (out / pkg).mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *proto_files(),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    for pkg in PACKAGES:
        init = out / pkg / "__init__.py"
        init.write_text(f'"""Generated from proto/{pkg}/*.proto by proto/generate.py. DO NOT EDIT."""\n')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT)
    args = parser.parse_args(argv)
    generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
