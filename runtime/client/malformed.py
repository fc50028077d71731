"""Malformed requests in a lab server's log: one line each, not a traceback.

grpc.aio logs a request body that does not decode as the method's message with
``logger.exception("Unexpected [DecodeError] raised by servicer method [/pkg.Svc/Method]")``, so
every garbage request (a fuzzer, a client built from the wrong .proto, grpcurl with a typo) wrote
a seven-line traceback into ``supervisor.log`` and the services' logs. The mistake is the caller's,
not the server's, and the caller already got its error status: one WARNING line that names the
method and the parse error is what the log needs. Exceptions of any other type keep their
traceback: those are bugs in a handler.

Both the supervisor (runtime/supervisor/daemon.py) and the agent (runtime/agent/server.py) call
``install()``; it lives here because both may import runtime.client and neither the other.

    >>> install()
    >>> any(isinstance(f, OneLineMalformed) for f in logging.getLogger(GRPC_AIO_LOGGER).filters)
    True
"""

from __future__ import annotations

import logging
import re

from google.protobuf.message import DecodeError

GRPC_AIO_LOGGER = "grpc._cython.cygrpc"  # where grpc.aio's server logs handler exceptions
_METHOD = re.compile(r"\[(/[^\]]*)\]")


class OneLineMalformed(logging.Filter):
    """Turn grpc.aio's traceback for an undecodable request into one WARNING line."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite records whose exception is a protobuf DecodeError; keep every record."""
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, DecodeError):
            return True
        found = _METHOD.search(record.getMessage())
        method = found.group(1) if found else "a method"
        record.msg = "malformed request to %s refused: %s"
        record.args = (method, str(exc)[:200])
        record.exc_info = None
        record.exc_text = None
        record.levelno = logging.WARNING
        record.levelname = logging.getLevelName(logging.WARNING)
        return True


def install() -> None:
    """Add the filter to grpc.aio's server logger (once per process)."""
    logger = logging.getLogger(GRPC_AIO_LOGGER)
    if not any(isinstance(f, OneLineMalformed) for f in logger.filters):
        logger.addFilter(OneLineMalformed())
