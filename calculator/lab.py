"""The calculator demo in a notebook: its client, its polyglot clients, its latency probe.

The runtime (``runtime.lab.Lab``) knows nothing about the calculator: it runs services and the
jobs lab.yaml names. The calculator is the demo that runs *on* it, so its notebook helpers live
here, on the calculator side, and a notebook imports them explicitly:

    from calculator.lab import CalculatorLab
    calc_lab = CalculatorLab(lab)
    calc_lab.client().add(2, 3)                  # a Python client, found through the broker
    calc_lab.toolchains()                        # language, tool, found, version, built, ...
    calc_lab.run_client("rust", "add", 2, 3)     # {'value': 5, 'server_language': 'python', ...}
    calc_lab.polyglot_calls("add", 2, 3)         # one row per client language: who called whom
    ChaosPanel(lab, probe=calc_lab.latency_probe())   # the chaos panel's client, as a callable

Why not a plug-in inside ``Lab``? Because the import line is the lesson: a learner sees where
the runtime ends and the application begins, and the runtime stays free of any one demo.

Every client (Python, TypeScript, Rust, C++) is a one-shot job in lab.yaml (``client-<language>``)
that the supervisor runs with ``lab.run_job``; the client finds a server only through the broker
and prints JSON log lines, which are parsed here (the parsing functions take the job's output,
so they work, and are tested, without a lab).
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from typing import TYPE_CHECKING, Any

import pandas as pd

from calculator.client import CalculatorClient
from calculator.client import log as client_log
from runtime.agent.log_handler import install_for_client
from runtime.errors import ClientError, UsageError, quote

if TYPE_CHECKING:
    from runtime.lab import Lab

LANGUAGES = ("python", "typescript", "rust", "cpp")
OPS = ("add", "subtract", "multiply", "divide")
JOB_PREFIX = "client-"
DEFAULT_TIMEOUT_S = 10.0
# The job runs a little longer than its client's RPC deadline: room to start and to report.
JOB_SLACK_S = 5.0
PROBE_TIMEOUT_S = 2.0
CLIENT_LOGGER = client_log.name  # "calculator.client": the lines a notebook ships as "notebook"
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
    """``2`` for 2.0, ``2.5`` for 2.5: what a learner would type on a command line.

    Raises:
        UsageError: not a finite number.
    """
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise UsageError(f"operands must be numbers, got {quote(x)}")
    if not math.isfinite(x):
        raise UsageError(f"operands must be finite numbers, got {x!r}")
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
        ClientError: the client reported an error (``code`` is the gRPC status name the client
            wrote in its ``grpc_code`` field, e.g. ``INVALID_ARGUMENT``) or exited without a result.
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
        if code and message.startswith(prefix):  # the code is shown once, by ClientError
            message = message[len(prefix) :]
        raise ClientError(f"{language} client: {message} (exit code {exit_code})", code)
    tail = " | ".join((stderr or stdout).strip().splitlines()[-5:])
    raise ClientError(
        f"{language} client exited with code {exit_code} and no result; last output: {tail or '(none)'}"
    )


class LatencyProbeCall:
    """One ``Add(1, 2)`` through the broker per call; returns the instance that answered.

    What the chaos panel's probe thread calls a few times per second (``widgets.sources.ProbeCall``).

    Raises:
        ClientError: the call failed (``code`` DEADLINE_EXCEEDED, UNAVAILABLE, ...).
        DiscoveryError: no calculator is registered right now.
    """

    label = "Add(1, 2)"

    def __init__(
        self, broker_address: str, timeout_s: float = PROBE_TIMEOUT_S, token: str | None = None
    ) -> None:
        self.client = CalculatorClient(broker_address, timeout_s=timeout_s, token=token)

    def __call__(self) -> str:
        self.client.add(1, 2)
        return (self.client.last_served_by or ("", ""))[0]

    def close(self) -> None:
        """Close the client's channels."""
        self.client.close()


class CalculatorLab:
    """The calculator demo over a running lab: its clients in every language, and a probe.

    Args:
        lab: the running ``runtime.lab.Lab`` (it only uses its public API: ``broker_address``,
            ``token`` and ``run_job``).

    Example:
        >>> calc_lab = CalculatorLab(Lab.up())            # doctest: +SKIP
        >>> calc_lab.run_client("rust", "add", 2, 3)["value"]   # doctest: +SKIP
        5
    """

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def client(self, timeout_s: float = 5.0) -> CalculatorClient:
        """A Python calculator client that finds servers through the broker.

        Its log lines ("Calling Add(2,3)", "Result: 5") go to the logger as service ``notebook``.

        Example:
            >>> calc_lab.client().add(2, 3, correlation_id="req-123")   # doctest: +SKIP
            5.0
        """
        self.ship_client_logs()
        return CalculatorClient(self.lab.broker_address, timeout_s=timeout_s, token=self.lab.token)

    def ship_client_logs(self, service_name: str = "notebook") -> logging.Handler:
        """Send this kernel's calculator-client log lines to the lab's logger as ``service_name``.

        So "Calling Add(2,3)" and "Result: 5" from a notebook show in ``lab.logs.trace(...)``
        beside the broker's and the server's lines. Idempotent (a re-run cell keeps one handler);
        returns the handler (``runtime.agent.log_handler.uninstall_for_client`` detaches it).
        """
        return install_for_client(
            service_name, self.lab.broker_address, logger_names=(CLIENT_LOGGER,), token=self.lab.token
        )

    def latency_probe(self, timeout_s: float = PROBE_TIMEOUT_S) -> LatencyProbeCall:
        """A callable for the chaos panel's probe: one ``Add(1, 2)``, returns who answered."""
        return LatencyProbeCall(self.lab.broker_address, timeout_s=timeout_s, token=self.lab.token)

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
            UsageError: an unknown language or operation, or an operand that is not a number.
            ClientError: the call failed (``err.code`` is the gRPC status name), or the client
                is not built (code ``FAILED_PRECONDITION``, with how to build it).
            ServiceNotFound: lab.yaml has no job for that language.

        Example:
            >>> calc_lab.run_client("rust", "add", 2, 3, correlation_id="req-123")  # doctest: +SKIP
            {'value': 5, 'instance': 'calculator-1', 'server_language': 'python', ...}
        """
        if language not in LANGUAGES:
            raise UsageError(
                f"unknown client language {quote(language)}; choose one of {', '.join(LANGUAGES)}"
            )
        if op not in OPS:
            raise UsageError(f"unknown operation {quote(op)}; choose one of {', '.join(OPS)}")
        cid = correlation_id or new_correlation_id()
        args = [op, number_arg(a), number_arg(b), "--correlation-id", cid, "--timeout-s", f"{timeout_s:g}"]
        try:
            result = self.lab.run_job(JOB_PREFIX + language, args, timeout_s=timeout_s + JOB_SLACK_S)
        except ClientError as err:
            if err.code == "FAILED_PRECONDITION":  # a file the job requires is missing: not built
                raise ClientError(f"{err.message}; {BUILD_HINT}", err.code) from err
            raise
        return parse_client_output(
            language, result.exit_code, result.stdout, result.stderr, job_elapsed_ms=result.elapsed_ms
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

        One correlation id for all calls (a new one when None), so ``lab.logs.trace(cid)`` shows
        them all. A client whose toolchain is missing gets its install hint in ``error`` instead
        of a call.
        """
        from calculator.toolchains import BY_LANGUAGE

        unknown = [lang for lang in languages if lang not in BY_LANGUAGE]
        if unknown:
            raise UsageError(f"unknown client languages {unknown}; choose from {', '.join(LANGUAGES)}")
        cid = correlation_id or new_correlation_id()
        rows = []
        for language in languages:
            tc = BY_LANGUAGE[language]
            if tc.missing():
                rows.append(
                    {
                        "client_language": language,
                        "correlation_id": cid,
                        "error": f"skipped: install {tc.install}",
                    }
                )
                continue
            try:
                rows.append({**self.run_client(language, op, a, b, correlation_id=cid), "error": ""})
            except ClientError as err:
                rows.append({"client_language": language, "correlation_id": cid, "error": str(err)})
        return pd.DataFrame(rows, columns=CALL_COLUMNS)

    def toolchains(self) -> pd.DataFrame:
        """Which toolchains are here: language, tool, found, version, built, missing, install."""
        from calculator.toolchains import toolchains_frame

        frame: pd.DataFrame = toolchains_frame()
        return frame

    def __repr__(self) -> str:
        return f"<CalculatorLab over {self.lab!r}>"
