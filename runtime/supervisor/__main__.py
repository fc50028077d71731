"""``python -m runtime.supervisor --lab-dir D --config F [--linger-s S]``: run the lab's daemon.

Exit codes (runtime.identity): 0 after a clean shutdown, 2 (EXIT_USAGE) for a bad lab.yaml or
arguments, 3 (EXIT_LOCKED) when another supervisor already runs for the lab directory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from runtime.identity import ENV_TOKEN, EXIT_LOCKED, EXIT_USAGE, LAB_UMASK
from runtime.supervisor import forkserver


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, take the lab lock, run the daemon until it shuts down."""
    os.umask(LAB_UMASK)  # before any file or process: every file of the lab is owner-only
    parser = argparse.ArgumentParser(prog="python -m runtime.supervisor", description=__doc__)
    parser.add_argument("--lab-dir", required=True, help="the lab directory (created if missing)")
    parser.add_argument("--config", required=True, help="lab.yaml; its folder is the project root")
    parser.add_argument("--linger-s", type=float, default=None, help="override linger_s from lab.yaml")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s supervisor %(levelname)s %(message)s"
    )
    lab_dir = os.path.abspath(args.lab_dir)
    # The fork server imports grpc, the agent and Connect while we import the daemon and read
    # lab.yaml (runtime/supervisor/forked.py): the first service forks that much sooner.
    early = None
    if forkserver.forking_enabled():
        try:
            early = forkserver.launch(
                lab_dir, os.path.dirname(os.path.abspath(args.config)), forkserver.server_env(lab_dir)
            )
        except OSError as exc:
            logging.warning("fork server could not start (%s); services are exec'd", exc)
    try:
        return _run(args, lab_dir, early)
    finally:
        if early is not None:  # not taken by a daemon (bad lab.yaml, locked lab): it goes now
            forkserver.discard(early)


def _run(args: argparse.Namespace, lab_dir: str, early: forkserver.Launched | None) -> int:
    from runtime.errors import ConfigError
    from runtime.supervisor.config import load_config
    from runtime.supervisor.daemon import Daemon, LabLocked, acquire_lock, create_token, secure_lab_dir
    from runtime.supervisor.log_link import LogLink

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.linger_s is not None and args.linger_s < 0:
        print("supervisor: --linger-s must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    secure_lab_dir(lab_dir)
    try:
        lock = acquire_lock(lab_dir)
    except LabLocked as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    # Ours now: a new token before anything starts; children inherit it from our environment.
    os.environ[ENV_TOKEN] = create_token(lab_dir)

    link = LogLink()

    async def serve() -> int:
        daemon = Daemon(config, lab_dir=lab_dir, linger_s=args.linger_s, on_output=link.tap, forkserver=early)
        daemon.manager.events.add_listener(lambda ev: link.on_event(ev, daemon.manager.broker_address))
        return await daemon.run()

    try:
        return asyncio.run(serve())
    finally:
        link.close()
        lock.close()  # after supervisor.json is gone: the next supervisor may start


if __name__ == "__main__":
    sys.exit(main())
