"""The JSON-line log contract every lab process may write on stdout or stderr.

One JSON object per line::

    {"ts": 1767000000123, "level": "INFO", "message": "Calling Add(2,3)",
     "correlation_id": "req-123", "service": "client-rust", "instance": "client-rust-1",
     "peer": "calculator-1"}

``ts`` is Unix epoch milliseconds, ``level`` one of TRACE DEBUG INFO WARN ERROR FATAL; any extra
key becomes metadata of the stored entry. Clients in every language write the same shape, and the
supervisor turns each line into a LogEntry (see ``runtime.client.logship.entry_from_output``).

Example:
    >>> line = format_line("Result: 5", level="INFO", correlation_id="req-123", ts_ms=1)
    >>> parse_line(line)["message"]
    'Result: 5'
"""

from __future__ import annotations

import json
import time
from typing import Any

LEVEL_NAMES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
# Spellings other loggers use for the same levels (Python's WARNING/CRITICAL, pino's numbers ...).
LEVEL_ALIASES = {
    "WARNING": "WARN",
    "CRITICAL": "FATAL",
    "ERR": "ERROR",
    "INFORMATION": "INFO",
    "FINE": "DEBUG",
    "PANIC": "FATAL",
}
# The keys of the contract; every other key is metadata.
CONTRACT_KEYS = ("ts", "ts_us", "level", "message", "correlation_id", "service", "instance")


def level_value(name: str | int) -> int | None:
    """The LogLevel number of a level name (``"WARN"``, ``"warning"``, ``3``), or None if unknown."""
    if isinstance(name, bool):
        return None
    if isinstance(name, int):
        return name if 0 <= name < len(LEVEL_NAMES) else None
    text = str(name).strip().upper()
    text = LEVEL_ALIASES.get(text, text)
    try:
        return LEVEL_NAMES.index(text)
    except ValueError:
        return None


def level_name(value: int) -> str:
    """The name of a LogLevel number (``2`` -> ``"INFO"``)."""
    return LEVEL_NAMES[value] if 0 <= value < len(LEVEL_NAMES) else str(value)


def parse_line(line: str) -> dict[str, Any] | None:
    """The contract object of one line, or None when the line is not a JSON log object.

    A JSON object counts when it has a ``message`` (or ``msg``) key. The result always has
    ``message`` (str), ``level`` (int or None if absent/unknown), ``ts`` (int ms or None),
    ``ts_us`` (int or None), ``correlation_id``, ``service``, ``instance`` (str) and
    ``fields`` (every other key, values as strings).
    """
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    if "message" in obj:
        message = obj.pop("message")
    elif "msg" in obj:
        message = obj.pop("msg")
    else:
        return None
    raw_level = obj.pop("level", None)
    level = level_value(raw_level) if raw_level is not None else None
    if raw_level is not None and level is None:
        obj["level"] = raw_level  # keep what we could not map, visible as metadata
    return {
        "message": message if isinstance(message, str) else json.dumps(message),
        "level": level,
        "ts": _as_int(obj.pop("ts", None)),
        "ts_us": _as_int(obj.pop("ts_us", None)),
        "correlation_id": str(obj.pop("correlation_id", "") or ""),
        "service": str(obj.pop("service", "") or ""),
        "instance": str(obj.pop("instance", "") or ""),
        "fields": {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()},
    }


def format_line(
    message: str,
    *,
    level: str | int = "INFO",
    correlation_id: str = "",
    service: str = "",
    instance: str = "",
    ts_ms: int | None = None,
    **fields: Any,
) -> str:
    """One JSON log line of the contract (no trailing newline); ``fields`` become metadata."""
    now_us = time.time_ns() // 1000
    value = level_value(level)
    obj: dict[str, Any] = {
        "ts": ts_ms if ts_ms is not None else now_us // 1000,
        "level": level_name(value) if value is not None else str(level),
        "message": message,
        "correlation_id": correlation_id,
        "service": service,
        "instance": instance,
    }
    if ts_ms is None:
        obj["ts_us"] = now_us  # sub-millisecond order for entries written in the same ms
    obj.update(fields)
    return json.dumps(obj, ensure_ascii=False, default=str)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    try:
        return int(float(str(value)))
    except ValueError:
        return None


def entry_to_line(entry: Any) -> str:
    """One stored LogEntry as a JSON line of this contract (NDJSON export; metadata inline)."""
    obj: dict[str, Any] = {
        "ts": entry.timestamp,
        "ts_us": entry.timestamp_us or entry.timestamp * 1000,
        "level": level_name(entry.level),
        "message": entry.message,
        "correlation_id": entry.correlation_id,
        "service": entry.service_name,
        "instance": entry.instance_id,
        "seq": entry.sequence,
        "source": entry.source,
    }
    for key, value in entry.metadata.items():
        obj.setdefault(key, value)
    return json.dumps(obj, ensure_ascii=False)
