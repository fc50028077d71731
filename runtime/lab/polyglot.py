"""The polyglot calculator from a notebook: ``lab.run_client``, ``lab.polyglot_calls``, ``lab.toolchains``.

Every client (Python, TypeScript, Rust, C++) is a one-shot job in lab.yaml (``client-<language>``)
that the supervisor runs with the lab's environment; the client finds a server only through the
broker and prints JSON log lines, which are parsed here.

    lab.toolchains()                               # language, tool, found, version, built, ...
    lab.run_client("rust", "add", 2, 3)            # {'value': 5, 'server_language': 'python', ...}
    lab.polyglot_calls("add", 2, 3)                # one row per client language: who called whom

The parsing functions take the job's output, so they work (and are tested) without a ``Lab``.
"""

from __future__ import annotations

import json
import math
import secrets
from typing import Any

import grpc
import pandas as pd

from runtime.errors import ClientError, ServiceNotFound
from runtime.v1 import supervisor_pb2

LANGUAGES = ("python", "typescript", "rust", "cpp")
OPS = ("add", "subtract", "multiply", "divide")
JOB_PREFIX = "client-"
DEFAULT_TIMEOUT_S = 10.0
# The supervisor's RPC deadline: the job's own timeout plus room to spawn and reap it.
RPC_SLACK_S = 5.0
CALL_COLUMNS = [
    "client_language",
    "server_language",
    "instance",
    "value",
    "elapsed_ms",
    "call_ms",
    "correlation_id",
    "error",
]
BUILD_HINT = "build it with `make polyglot` (python -m calculator.toolchains build)"


def new_correlation_id() -> str:
    """A fresh id such as ``req-3f9a1c2b`` (the same shape every client makes)."""
    return f"req-{secrets.token_hex(4)}"


def number_arg(x: float) -> str:
    """``2`` for 2.0, ``2.5`` for 2.5: what a learner would type on a command line."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise TypeError(f"operands must be numbers, got {x!r}")
    if not math.isfinite(x):
        raise ValueError(f"operands must be finite numbers, got {x!r}")
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among ``text``'s lines (anything else, e.g. a stray print, is skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def parse_client_output(
    language: str, exit_code: int, stdout: str, stderr: str = "", *, job_elapsed_ms: float = 0.0
) -> dict[str, Any]:
    """Turn one client run into a result dict, or raise ClientError with the gRPC status.

    Returns:
        value, instance (the answering server instance), server_language, elapsed_ms (process
        start -> exit as the supervisor measured it; the client's own figure when not given),
        call_ms (lookup + call as the client measured it), correlation_id, client_language.

    Raises:
        ClientError: the client reported an error (``code`` is the gRPC status name, e.g.
            ``INVALID_ARGUMENT``) or exited without a result.
    """
    entries = json_lines(stdout)
    result = next((e for e in reversed(entries) if "result" in e and "served_by" in e), None)
    if exit_code == 0 and result is not None:
        served = result.get("served_by") or {}
        call_ms = float(result.get("elapsed_ms") or 0.0)
        return {
            "value": result["result"],
            "instance": served.get("instance_id", ""),
            "server_language": served.get("language", ""),
            "elapsed_ms": round(job_elapsed_ms, 3) if job_elapsed_ms else call_ms,
            "call_ms": call_ms,
            "correlation_id": result.get("correlation_id", ""),
            "client_language": language,
        }
    error = next((e for e in reversed(entries) if e.get("level") in ("ERROR", "FATAL")), None)
    if error is not None:
        code = str(error.get("grpc_code", ""))
        message = str(error.get("message", ""))
        prefix = f"{code}: "
        if code and message.startswith(prefix):
            message = message[len(prefix) :]
        raise ClientError(f"{language} client: {message} (exit code {exit_code})", code)
    tail = " | ".join((stderr or stdout).strip().splitlines()[-5:])
    raise ClientError(
        f"{language} client exited with code {exit_code} and no result; last output: {tail or '(none)'}"
    )


class PolyglotViews:
    """Mixin for ``Lab``: run calculator clients of any language under the supervisor.

    Needs ``self._supervisor`` (a SupervisorServiceStub on a sync channel).
    """

    _supervisor: Any

    def run_client(
        self,
        language: str,
        op: str,
        a: float,
        b: float,
        correlation_id: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> dict[str, Any]:
        """Run the ``client-<language>`` job once: it looks up the calculator and calls ``op(a, b)``.

        Args:
            language: python, typescript, rust or cpp.
            op: add, subtract, multiply or divide.
            a, b: the operands.
            correlation_id: sent as ``x-correlation-id`` (a new ``req-...`` id when None).
            timeout_s: deadline of the client's RPCs; the job is killed a little after it.

        Returns:
            dict with value, instance, server_language, elapsed_ms, call_ms, correlation_id,
            client_language.

        Raises:
            ClientError: the call failed (``err.code`` is the gRPC status name), the client is not
                built, or the job could not run.

        Example:
            >>> lab.run_client("rust", "add", 2, 3, correlation_id="req-123")  # doctest: +SKIP
            {'value': 5, 'instance': 'calculator-1', 'server_language': 'python', ...}
        """
        if language not in LANGUAGES:
            raise ValueError(f"unknown client language {language!r}; choose one of {', '.join(LANGUAGES)}")
        if op not in OPS:
            raise ValueError(f"unknown operation {op!r}; choose one of {', '.join(OPS)}")
        cid = correlation_id or new_correlation_id()
        args = [op, number_arg(a), number_arg(b), "--correlation-id", cid, "--timeout-s", f"{timeout_s:g}"]
        job = JOB_PREFIX + language
        request = supervisor_pb2.RunJobRequest(
            job=job, args=args, timeout_ms=int((timeout_s + RPC_SLACK_S) * 1000)
        )
        try:
            resp = self._supervisor.RunJob(request, timeout=timeout_s + 2 * RPC_SLACK_S)
        except grpc.RpcError as err:
            code = err.code()
            details = err.details() or str(err)
            if code == grpc.StatusCode.NOT_FOUND:
                raise ServiceNotFound(f"no job {job!r} in lab.yaml: {details}") from err
            if code == grpc.StatusCode.FAILED_PRECONDITION:
                raise ClientError(f"{job} cannot run: {details}; {BUILD_HINT}", code.name) from err
            raise ClientError(f"{job}: {details}", code.name) from err
        return parse_client_output(
            language, resp.exit_code, resp.stdout, resp.stderr, job_elapsed_ms=resp.elapsed_ms
        )

    def polyglot_calls(
        self,
        op: str = "add",
        a: float = 2,
        b: float = 3,
        *,
        languages: tuple[str, ...] = LANGUAGES,
        correlation_id: str | None = None,
    ) -> pd.DataFrame:
        """Who called whom: run every client language once; a failure is a row with ``error`` set.

        One correlation id for all calls (a new one when None), so ``lab.trace(cid)`` shows them all.
        A client whose toolchain is missing gets its install hint in ``error`` instead of a call.
        """
        from calculator.toolchains import BY_LANGUAGE

        cid = correlation_id or new_correlation_id()
        rows = []
        for language in languages:
            tc = BY_LANGUAGE[language]
            missing = tc.missing()
            if missing:
                rows.append(
                    {
                        "client_language": language,
                        "correlation_id": cid,
                        "error": f"skipped: install {tc.install}",
                    }
                )
                continue
            try:
                rows.append(self.run_client(language, op, a, b, correlation_id=cid))
                rows[-1]["error"] = ""
            except ClientError as err:
                rows.append({"client_language": language, "correlation_id": cid, "error": str(err)})
        return pd.DataFrame(rows, columns=CALL_COLUMNS)

    def toolchains(self) -> pd.DataFrame:
        """Which toolchains are here: language, tool, found, version, built, missing, install."""
        from calculator.toolchains import toolchains_frame

        frame: pd.DataFrame = toolchains_frame()
        return frame
