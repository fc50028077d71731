"""`runtime-lab`: the lab from a terminal.

    runtime-lab up [--lab-dir D] [--config F] [--foreground]   start (or attach) and hold the lab
    runtime-lab status [--json]                                  the process table
    runtime-lab events                                           lifecycle decisions with reasons
    runtime-lab top [-b -n N]                                    live table with keys (q quits); -b: snapshots
    runtime-lab down                                             stop everything

`up` holds a persistent lease, so the lab stays after the command returns, until `down`.
With --foreground it stays attached, prints events as they come, and Ctrl-C stops the lab.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import pandas as pd

from runtime import top
from runtime.errors import LabError, LabNotRunning, StartupError
from runtime.identity import LOOPBACK, WEB_SERVICE
from runtime.lab import Lab, launcher
from runtime.lab.project import resolve

FOREGROUND_POLL_S = 0.5


def _parser() -> argparse.ArgumentParser:
    # --lab-dir works before or after the command: `runtime-lab --lab-dir D up` and `runtime-lab up --lab-dir D`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--lab-dir", default=argparse.SUPPRESS, help="lab directory (default: .lab in the project root)"
    )
    parser = argparse.ArgumentParser(
        prog="runtime-lab", description="Run and watch the service runtime lab.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up", parents=[common], help="start the lab (or attach) and keep it running until `down`"
    )
    up.add_argument("--config", default=None, help="lab file (default: lab.yaml in the project root)")
    up.add_argument(
        "--foreground", action="store_true", help="stay attached; print events; Ctrl-C stops the lab"
    )
    up.add_argument("--timeout-s", type=float, default=60.0)
    st = sub.add_parser("status", parents=[common], help="the process table")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    ev = sub.add_parser("events", parents=[common], help="lifecycle events with reasons")
    ev.add_argument("--limit", type=int, default=50)
    tp = sub.add_parser("top", parents=[common], help="live process table with keys (q quits)")
    tp.add_argument("-b", "--batch", action="store_true", help="plain snapshots instead of the app (as top -b)")
    tp.add_argument("-n", "--iterations", type=int, default=1, help="snapshots in batch mode (default 1)")
    sub.add_parser("down", parents=[common], help="stop every process and the supervisor")
    return parser


def _print_table(df: pd.DataFrame) -> None:
    print(df.to_string(index=False) if len(df) else "(nothing)")


def _print_status(lab: Lab) -> None:
    """The process table, then the links a person opens: the web page (with the token, like Jupyter's)."""
    df = lab.status()
    _print_table(df)
    web = df[(df.service == WEB_SERVICE) & df.http_port.notna()]
    for instance, port in zip(web.instance, web.http_port, strict=True):
        print(f"\nweb page ({instance}): http://{LOOPBACK}:{port}/#token={lab.token}")


def _up(args: argparse.Namespace) -> int:
    if not args.foreground:
        lab = Lab.up(args.lab_dir, args.config, timeout_s=args.timeout_s, persistent=True)
        _print_status(lab)
        print(f"\nlab running in {lab.lab_dir} (supervisor pid {lab.pid}); stop it with: runtime-lab down")
        return 0
    lab = Lab.up(args.lab_dir, args.config, timeout_s=args.timeout_s)
    _print_table(lab.status())
    print("\nwatching events; Ctrl-C stops the lab")
    seen = int(lab.events(limit=1).seq.max() or 0) if len(lab.events(limit=1)) else 0
    try:
        while True:
            evs = lab.events(limit=0)
            for _, ev in evs[evs.seq > seen].iterrows():
                print(f"{ev.time:%H:%M:%S} {ev.instance:<16} {ev.event:<18} {ev.reason}", flush=True)
                seen = ev.seq
            time.sleep(FOREGROUND_POLL_S)
    except KeyboardInterrupt:
        print("\nstopping the lab ...", flush=True)
        lab.down()
    return 0


def _down(args: argparse.Namespace) -> int:
    """Stop the lab: through its supervisor when it answers, else by the pid its lock names.

    A lab whose supervisor.json is damaged, or whose daemon hangs, is still stopped: the lock file
    says which process holds the lab (runtime/lab/launcher.py ``stop_holder``).
    """
    lab_dir = resolve(args.lab_dir, None).lab_dir
    try:
        reachable = launcher.find_running(lab_dir, wait_s=0) is not None
    except StartupError:
        reachable = False  # held, but not through supervisor.json: stop it by its lock below
    if reachable:
        lab = Lab.attach(args.lab_dir)
        try:
            lab.down()
        finally:
            lab.close()
        print(f"lab in {lab_dir} stopped")
        return 0
    pid = launcher.stop_holder(lab_dir)
    if pid is None:
        raise LabNotRunning(f"no lab is running in {lab_dir}; nothing to stop")
    print(f"lab in {lab_dir} stopped (supervisor pid {pid}, found through {launcher.LOCK_FILE})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `runtime-lab`."""
    args = _parser().parse_args(argv)
    args.lab_dir = getattr(args, "lab_dir", None)
    try:
        if args.command == "up":
            return _up(args)
        if args.command == "down":
            return _down(args)
        lab = Lab.attach(args.lab_dir)
        try:
            if args.command == "status":
                if args.json:
                    print(json.dumps(json.loads(lab.status().to_json(orient="records")), indent=2))
                else:
                    _print_status(lab)
            elif args.command == "events":
                _print_table(lab.events(limit=args.limit)[["time", "instance", "pid", "event", "reason"]])
            elif args.command == "top":
                if args.batch or not sys.stdout.isatty():
                    top.run_batch(lab, args.iterations)
                else:
                    top.run(lab)
        finally:
            lab.close()
    except LabError as err:
        print(f"runtime-lab: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
