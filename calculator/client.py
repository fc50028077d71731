"""The Python calculator client: a library class and a one-shot job.

    client = CalculatorClient()          # finds the servers through the broker (LAB_BROKER_ADDR)
    client.add(2, 3, correlation_id="req-123")   # -> 5.0; logs "Calling Add(2,3)" and "Result: 5"
    client.close()

Job: ``python -m calculator.client add 2 3 [--correlation-id req-123] [--timeout-s 5]`` writes one
JSON object per line on stdout (keys ts, level, message, correlation_id, service, instance, plus
extras; the last line carries result, served_by and elapsed_ms). Exit 0 on success; on failure an
ERROR line "<STATUS>: <details>" with key grpc_code and exit 1; bad usage (or no LAB_BROKER_ADDR)
writes an ERROR line starting with the problem and the usage, and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any, NoReturn

import grpc

from calculator.contract import GRPC_SERVICE
from calculator.numbers import call_text, fmt
from calculator.v1 import calculator_pb2, calculator_pb2_grpc
from runtime.client import correlation
from runtime.client.discovery import DEFAULT_TIMEOUT_S, DiscoveryChannel, connect
from runtime.errors import ClientError, DiscoveryError, NoInstances
from runtime.identity import ENV_BROKER_ADDR, ENV_CORRELATION_ID, EXIT_FAILED, EXIT_OK, EXIT_USAGE, Identity

log = logging.getLogger("calculator.client")

LANGUAGE = "python"
DEFAULT_JOB_SERVICE = "client-python"
FIELDS_ATTR = "lab_fields"  # extra={"lab_fields": {...}}: keys added to the JSON line
_REQUESTS = {
    "Add": calculator_pb2.AddRequest,
    "Subtract": calculator_pb2.SubtractRequest,
    "Multiply": calculator_pb2.MultiplyRequest,
    "Divide": calculator_pb2.DivideRequest,
}


def _number(value: float) -> int | float:
    return int(value) if fmt(value).lstrip("-").isdigit() else value


class CalculatorClient:
    """Calls the calculator through discovery, one correlation id per call.

    Example:
        >>> client = CalculatorClient("127.0.0.1:50051")  # doctest: +SKIP
        >>> client.add(2, 3), client.last_served_by  # doctest: +SKIP
        (5.0, ('calculator-1', 'python'))
    """

    def __init__(
        self,
        broker_address: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        token: str | None = None,
    ) -> None:
        self.broker_address = broker_address
        self.token = token  # the lab's token; None: $LAB_TOKEN (a job), else $LAB_DIR/token
        self.timeout_s = timeout_s
        self.last_served_by: tuple[str, str] | None = None
        self.last_response: Any = None
        self._channel: DiscoveryChannel | None = None
        self._stub: calculator_pb2_grpc.CalculatorServiceStub | None = None

    def add(self, a: float, b: float, correlation_id: str | None = None) -> float:
        """a + b."""
        return self._call("Add", a, b, correlation_id)

    def subtract(self, a: float, b: float, correlation_id: str | None = None) -> float:
        """a - b."""
        return self._call("Subtract", a, b, correlation_id)

    def multiply(self, a: float, b: float, correlation_id: str | None = None) -> float:
        """a * b."""
        return self._call("Multiply", a, b, correlation_id)

    def divide(self, a: float, b: float, correlation_id: str | None = None) -> float:
        """a / b; b == 0 raises ClientError with code INVALID_ARGUMENT."""
        return self._call("Divide", a, b, correlation_id)

    def close(self) -> None:
        """Close the discovery channel (and its watch thread)."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._stub = None

    def __enter__(self) -> CalculatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, operation: str, a: float, b: float, correlation_id: str | None) -> float:
        cid = correlation_id or correlation.current() or correlation.new_id()
        with correlation.use(cid):
            started = time.monotonic()
            log.info("Calling %s", call_text(operation, a, b))
            if self._stub is None:
                # The first lookup runs inside the correlation scope, so the broker logs it with cid.
                self._channel = connect(
                    GRPC_SERVICE, self.broker_address, timeout_s=self.timeout_s, token=self.token
                )
                self._stub = calculator_pb2_grpc.CalculatorServiceStub(self._channel)
            try:
                response = getattr(self._stub, operation)(
                    _REQUESTS[operation](a=a, b=b), timeout=self.timeout_s
                )
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:  # the seed: "clients log timeouts"
                    log.warning(
                        "%s timed out after %.2f s (DEADLINE_EXCEEDED): no answer within the deadline",
                        call_text(operation, a, b), time.monotonic() - started,
                    )  # fmt: skip
                raise ClientError(exc.details() or f"{operation} failed", code=code.name) from None  # type: ignore[attr-defined]
            served = response.served_by
            self.last_response = response
            self.last_served_by = (served.instance_id, served.language)
            fields = {
                "result": _number(response.result),
                "served_by": {
                    "instance_id": served.instance_id,
                    "language": served.language,
                    "service_name": served.service_name,
                },
                "elapsed_ms": round((time.monotonic() - started) * 1000, 3),
            }
            log.info("Result: %s", fmt(response.result), extra={FIELDS_ATTR: fields})
            # The seed's teaching line, the same in every language: "rust client called python server".
            teaching = {
                "client_language": LANGUAGE,
                "server_language": served.language,
                "server_instance": served.instance_id,
            }
            log.info("%s client called %s server", LANGUAGE, served.language, extra={FIELDS_ATTR: teaching})
            return response.result


class JsonLineHandler(logging.Handler):
    """Writes each record as one JSON line (the lab's client log contract) on a stream."""

    LEVELS = {"WARNING": "WARN", "CRITICAL": "FATAL"}

    def __init__(self, identity: Identity, stream: Any = None) -> None:
        super().__init__()
        self.identity = identity
        self.stream = stream or sys.stdout

    def emit(self, record: logging.LogRecord) -> None:
        line: dict[str, Any] = {
            "ts": int(record.created * 1000),
            "level": self.LEVELS.get(record.levelname, record.levelname),
            "message": record.getMessage(),
            "correlation_id": correlation.current(),
            "service": self.identity.service_name,
            "instance": self.identity.instance_id,
        }
        line.update(getattr(record, FIELDS_ATTR, None) or {})
        try:
            self.stream.write(json.dumps(line) + "\n")
            self.stream.flush()
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


class _UsageError(Exception):
    """Bad command-line usage: reported as a JSON ERROR line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message}; {self.format_usage().strip()}")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="python -m calculator.client", description="Call the lab calculator once.")
    parser.add_argument("operation", type=str.lower, choices=[op.lower() for op in _REQUESTS])
    parser.add_argument("a", type=float)
    parser.add_argument("b", type=float)
    parser.add_argument(
        "--correlation-id",
        default=os.environ.get(ENV_CORRELATION_ID, ""),  # the one env key a RunJob caller may set
        help=f"e.g. req-123 (default: ${ENV_CORRELATION_ID}, else a new id)",
    )
    parser.add_argument(
        "--timeout-s", type=float, default=DEFAULT_TIMEOUT_S, help="deadline of lookup and call"
    )
    parser.add_argument("--broker", default=None, help=f"broker address (default: ${ENV_BROKER_ADDR})")
    return parser.parse_args(argv)


def _failure(exc: DiscoveryError) -> tuple[str, str]:
    """The status name and the ERROR message for a discovery failure (by its type, not its text)."""
    code = "NOT_FOUND" if isinstance(exc, NoInstances) else "UNAVAILABLE"
    return code, f"{code}: {exc}"


def main(argv: list[str] | None = None) -> int:
    """Run one call as a job; returns the exit code (0 ok, 1 failed, 2 bad usage)."""
    identity = Identity.from_env(default_service=DEFAULT_JOB_SERVICE)
    root = logging.getLogger()
    handler = JsonLineHandler(identity)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        return _run(argv, identity)
    finally:
        root.removeHandler(handler)


def _run(argv: list[str] | None, identity: Identity) -> int:
    try:
        args = _parse(argv)
    except _UsageError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    with correlation.use(args.correlation_id or correlation.new_id()):
        broker = args.broker or identity.broker_address
        if not broker:
            log.error(
                "%s is not set: the client finds servers only through the broker (or pass --broker)",
                ENV_BROKER_ADDR,
            )
            return EXIT_USAGE
        client = CalculatorClient(broker, timeout_s=args.timeout_s)
        try:
            getattr(client, args.operation)(args.a, args.b)
            return EXIT_OK
        except ClientError as exc:
            log.error("%s", exc, extra={FIELDS_ATTR: {"grpc_code": exc.code}})
        except DiscoveryError as exc:
            code, message = _failure(exc)
            log.error("%s", message, extra={FIELDS_ATTR: {"grpc_code": code}})
        finally:
            client.close()
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
