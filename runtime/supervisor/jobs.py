"""One-shot jobs (``jobs:`` in lab.yaml, e.g. a calculator client): run once, collect the result.

A job gets the same environment contract as a service (LAB_SERVICE=<job>, LAB_INSTANCE=<job>-<n>),
runs in its own process group with the parent-death signal armed, and is killed as a group when
its timeout passes. Its output lines also go to the ``on_output`` seam.

A job runs what the lab says, not what the caller says: the command and environment come from
lab.yaml; a RunJob caller adds arguments and at most the keys of ``JOB_ENV_ALLOWLIST``. Any other
key could change what the command executes (``PYTHONPATH`` to a ``sitecustomize.py``,
``NODE_OPTIONS=--require ...``, ``LD_PRELOAD``), so it is refused, not filtered silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import time
from collections import defaultdict
from dataclasses import dataclass

from runtime.errors import ServiceNotFound, quote
from runtime.identity import ENV_CORRELATION_ID, EXIT_TIMEOUT
from runtime.supervisor.config import JobSpec, missing_requirement, resolve_command
from runtime.supervisor.manager import Manager
from runtime.supervisor.output import read_lines
from runtime.supervisor.process import signal_group, spawn

DEFAULT_TIMEOUT_S = 30.0
DRAIN_S = 0.5
# What a RunJob caller may put in the job's environment: data for the job, never code paths.
JOB_ENV_ALLOWLIST = frozenset({ENV_CORRELATION_ID})


class JobUnavailable(Exception):
    """The job cannot run here: something it requires is missing."""


class JobEnvRefused(ValueError):
    """A RunJob caller asked for an environment key outside ``JOB_ENV_ALLOWLIST``."""


def check_job_env(job: str, env: dict[str, str]) -> None:
    """Refuse any caller-given environment key outside the allowlist (the first one, sorted).

    Raises:
        JobEnvRefused: names the key (quoted, at most ~200 characters) and what is allowed.
    """
    refused = sorted(k for k in env if k not in JOB_ENV_ALLOWLIST)
    if refused:
        allowed = ", ".join(sorted(JOB_ENV_ALLOWLIST))
        raise JobEnvRefused(
            f"job {quote(job)}: environment key {quote(refused[0])} is not allowed; a job runs the "
            f"command and environment lab.yaml gives it, and a caller may set only {allowed} "
            "(pass anything else as arguments)"
        )


@dataclass
class JobResult:
    """What RunJob returns."""

    exit_code: int
    stdout: str
    stderr: str
    elapsed_ms: float
    pid: int
    instance_id: str
    timed_out: bool = False


class JobRunner:
    """Runs ``jobs:`` entries of the manager's config on request."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager
        self.running_pids: set[int] = set()
        self._counters: dict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))

    def spec(self, job: str) -> JobSpec:
        """The job's spec; ServiceNotFound lists the known jobs."""
        jobs = self.manager.config.jobs
        if job not in jobs:
            raise ServiceNotFound(f"unknown job {quote(job)}; known jobs: {', '.join(jobs) or '(none)'}")
        return jobs[job]

    async def run(
        self, job: str, args: list[str], env: dict[str, str], timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> JobResult:
        """Run job ``job`` with ``args`` appended; kill its group after ``timeout_s``.

        Raises:
            JobEnvRefused: ``env`` has a key outside ``JOB_ENV_ALLOWLIST``.
            ServiceNotFound: no such job.
            JobUnavailable: a required command or file is missing (names it).
        """
        check_job_env(job, env)
        spec = self.spec(job)
        root = self.manager.config.project_root
        missing = missing_requirement(spec.requires, root)
        if missing:
            raise JobUnavailable(f"job {job} needs {missing}, which is not found; install or build it first")
        argv = resolve_command(spec.command, root) + list(args)
        if not os.path.exists(argv[0]) and not shutil.which(argv[0]):
            raise JobUnavailable(
                f"job {job}: command {spec.command[0]!r} not found (not on PATH, not under {root}); "
                f"install it or fix jobs.{job}.command"
            )
        instance_id = f"{job}-{next(self._counters[job])}"
        full_env = self.manager.child_env(job, instance_id, spec.language, {**spec.env, **env})
        started = time.monotonic()
        try:
            proc = await spawn(argv, env=full_env, cwd=root)
        except OSError as exc:
            raise JobUnavailable(f"job {job} could not start {argv[0]}: {exc}") from exc
        out: dict[str, list[str]] = {"stdout": [], "stderr": []}
        on_output = self.manager.on_output

        def sink(stream: str, ts_ms: int, text: str) -> None:
            out[stream].append(text)
            if on_output is not None:
                with contextlib.suppress(Exception):
                    on_output(job, instance_id, proc.pid, stream, ts_ms, text)

        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            asyncio.create_task(read_lines(proc.stdout, "stdout", sink)),
            asyncio.create_task(read_lines(proc.stderr, "stderr", sink)),
        ]
        self.running_pids.add(proc.pid)
        keeper = self.manager.keeper
        if keeper is not None:
            keeper.add(proc.pid)
        timed_out = False
        try:
            try:
                returncode = await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                timed_out = True
                signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
                returncode = EXIT_TIMEOUT  # like coreutils `timeout`
        finally:
            self.running_pids.discard(proc.pid)
            signal_group(proc.pid, signal.SIGKILL)  # leftovers in its group
            if keeper is not None:
                keeper.remove(proc.pid)
            if proc.returncode is None:  # cancelled while running
                await proc.wait()
            _, pending = await asyncio.wait(readers, timeout=DRAIN_S)
            for task in pending:
                task.cancel()
        if timed_out:
            out["stderr"].append(f"[supervisor] job {job} killed after its timeout of {timeout_s:g}s")
        return JobResult(
            exit_code=returncode,
            stdout="\n".join(out["stdout"]) + ("\n" if out["stdout"] else ""),
            stderr="\n".join(out["stderr"]) + ("\n" if out["stderr"] else ""),
            elapsed_ms=round((time.monotonic() - started) * 1000, 3),
            pid=proc.pid,
            instance_id=instance_id,
            timed_out=timed_out,
        )
