"""One-shot jobs from lab.yaml (``jobs:``), run by the supervisor: ``lab.run_job``.

The runtime knows jobs only as commands the lab file names; it does not know what they do. The
supervisor runs one with the lab's environment (broker address, lab dir, token), waits for it,
and hands back its exit code and output. What the output means is the job's business: the
calculator's clients, for example, are read by ``calculator.lab`` (the demo sits on top of the
runtime, so the runtime never parses calculator output).

    result = lab.run_job("client-rust", ["add", "2", "3"], timeout_s=10)
    result.exit_code, result.stdout.splitlines()[-1]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runtime.errors import UsageError, quote
from runtime.lab.connection import message
from runtime.v1 import supervisor_pb2

DEFAULT_JOB_TIMEOUT_S = 30.0
# The supervisor's RPC deadline: the job's own timeout plus room to spawn and reap it.
RPC_SLACK_S = 5.0


@dataclass(frozen=True)
class JobResult:
    """How one run of a job ended.

    Attributes:
        job: the job's name in lab.yaml.
        exit_code: its exit code (negative: killed by that signal, e.g. at its timeout).
        stdout, stderr: everything it printed.
        elapsed_ms: process start -> exit, as the supervisor measured it.
        pid, instance: which process it was (its logs carry the instance id).
    """

    job: str
    exit_code: int
    stdout: str
    stderr: str
    elapsed_ms: float
    pid: int
    instance: str

    @classmethod
    def from_response(cls, job: str, resp: supervisor_pb2.RunJobResponse) -> JobResult:
        """Convert the supervisor's RunJobResponse."""
        return cls(
            job=job,
            exit_code=resp.exit_code,
            stdout=resp.stdout,
            stderr=resp.stderr,
            elapsed_ms=resp.elapsed_ms,
            pid=resp.pid,
            instance=resp.instance_id,
        )


def job_request(job: str, args: Sequence[str], timeout_s: float) -> supervisor_pb2.RunJobRequest:
    """The RunJobRequest; a UsageError for arguments that are not text or a timeout that is not > 0."""
    if isinstance(args, str):
        raise UsageError(
            f"args of job {job!r} is a list of strings, e.g. ['add', '2', '3'], not {quote(args)}"
        )
    if not isinstance(timeout_s, int | float) or isinstance(timeout_s, bool) or timeout_s <= 0:
        raise UsageError(f"timeout_s of job {job!r} must be a number of seconds > 0, got {timeout_s!r}")
    return message(
        supervisor_pb2.RunJobRequest,
        f"job {job!r}",
        job=job,
        args=list(args),
        timeout_ms=int(timeout_s * 1000),
    )
