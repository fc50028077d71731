"""Bytecode for the lab's own Python packages, written so that the next service starts read it.

Every Python service imports some sixty of the project's modules (the agent, the client, the
contracts). Python writes their bytecode to ``__pycache__`` on first import, unless
``PYTHONDONTWRITEBYTECODE`` is set (some containers and CI images set it): then every process
compiles them from source at every start, about 0.06 s of CPU per service, 0.6 s of a 2-core
machine's start-up budget for the default lab. Python still *reads* bytecode under that
setting, so the daemon writes what is missing or stale with ``compileall`` (what pip does for an
installed package), once the lab has started: the lab start that follows reads it. Up to date, it
only compares timestamps (~0.1 s of CPU, off the start-up path).

    packages = python_packages(config)      # e.g. ["calculator", "runtime"]
    compile_packages(config.project_root, packages)
"""

from __future__ import annotations

import compileall
import logging
import os

from runtime.supervisor.config import LabConfig

# Compile once no instance is starting any more (not while the services import), checked this
# often, and at the latest this long after the lab started.
SETTLE_POLL_S = 0.5
SETTLE_MAX_S = 10.0

_log = logging.getLogger(__name__)


def python_packages(config: LabConfig) -> list[str]:
    """Top-level packages under the project root that the lab's ``python -m`` commands run, plus ``runtime``.

    >>> from runtime.supervisor.config import parse_config
    >>> cfg = parse_config({"services": {"c": {"command": ["python", "-m", "calculator.server"]}}}, "/p/lab.yaml")
    >>> python_packages(cfg)
    ['calculator', 'runtime']
    """
    names = {"runtime"}  # the agent every Python service embeds
    commands = [s.command for s in config.services.values()] + [j.command for j in config.jobs.values()]
    for command in commands:
        argv = list(command)
        if argv[0] == "python" and "-m" in argv[:-1]:
            names.add(argv[argv.index("-m") + 1].split(".")[0])
    return sorted(names)


def compile_packages(project_root: str, packages: list[str]) -> bool:
    """Write missing or stale bytecode of ``packages`` (folders under ``project_root``); True if all compiled.

    Never raises: a read-only tree or a syntax error only means the services compile in memory,
    as they would without this.
    """
    ok = True
    for name in packages:
        folder = os.path.join(project_root, name)
        if not os.path.isfile(os.path.join(folder, "__init__.py")):
            continue
        try:
            ok = bool(compileall.compile_dir(folder, quiet=2, workers=1)) and ok
        except OSError as exc:
            _log.info("bytecode of %s not written: %s", folder, exc)
            ok = False
    return ok
