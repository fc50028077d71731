"""The logger's store on real SQLite files: ring vs SQLite answers, FTS5 search, truncation, retention."""

from __future__ import annotations

import io
import json
import sqlite3

import pytest

from runtime.identity import LOGS_DB_FILE
from runtime.services.logger.filter import Selector
from runtime.services.logger.store import MAX_MESSAGE_BYTES, LogStore, truncate_message
from runtime.v1 import logger_pb2 as pb

T0 = 1_800_000_000_000


def entry(i: int, message: str = "", **kw: object) -> pb.LogEntry:
    fields = dict(
        service_name="calculator", instance_id="calculator-1", level=pb.INFO, timestamp=T0 + i,
        message=message or f"request {i} served",
    )  # fmt: skip
    fields.update(kw)
    return pb.LogEntry(**fields)  # type: ignore[arg-type]


def test_append_numbers_entries_and_commits_them(tmp_path):
    store = LogStore(str(tmp_path), ring_size=100)
    stored, cut = store.append([entry(i) for i in range(5)])
    assert [e.sequence for e in stored] == [1, 2, 3, 4, 5] and cut == 0
    store.close()
    # A second connection (as after a restart) sees the committed rows.
    with sqlite3.connect(tmp_path / LOGS_DB_FILE) as db:
        assert db.execute("SELECT count(*) FROM logs").fetchone()[0] == 5
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_filters_on_ring(tmp_path):
    store = LogStore(str(tmp_path), ring_size=100)
    store.append(
        [
            entry(1, "Add(2,3) = 5", correlation_id="req-1"),
            entry(2, "Divide(1,0) rejected: division by zero", level=pb.ERROR),
            entry(3, "Lookup CalculatorService", service_name="broker", instance_id="broker-1"),
            entry(4, "Add(4,4) = 8", instance_id="calculator-2"),
        ]
    )
    msgs = lambda sel: [e.message for e in store.query(sel)[0]]  # noqa: E731
    assert msgs(Selector.build(services=["calculator"], min_level=pb.ERROR)) == [
        "Divide(1,0) rejected: division by zero"
    ]
    assert msgs(Selector.build(search="add")) == ["Add(2,3) = 5", "Add(4,4) = 8"]
    assert msgs(Selector.build(search="DIVISION zer")) == ["Divide(1,0) rejected: division by zero"]
    assert msgs(Selector.build(search="ivision")) == []  # words match from their start, like FTS5
    assert msgs(Selector.build(correlation_id="req-1")) == ["Add(2,3) = 5"]
    assert msgs(Selector.build(instances=["calculator-2"])) == ["Add(4,4) = 8"]
    assert msgs(Selector.build(start_ms=T0 + 2, end_ms=T0 + 3)) == [
        "Divide(1,0) rejected: division by zero",
        "Lookup CalculatorService",
    ]
    newest = Selector.build(limit=2, newest_first=True)
    assert msgs(newest) == ["Add(4,4) = 8", "Lookup CalculatorService"]
    assert store.query(newest)[1] == "ring"


def test_queries_past_the_ring_go_to_sqlite_fts(tmp_path):
    store = LogStore(str(tmp_path), ring_size=10)
    store.append([entry(i, f"order {i} shipped" if i % 7 else f"order {i} failed") for i in range(100)])
    found, origin = store.query(Selector.build(search="failed"))
    assert origin == "sqlite"
    assert [e.message for e in found] == [f"order {i} failed" for i in range(0, 100, 7)]
    # A range that starts after everything the ring evicted is answered from the ring.
    found, origin = store.query(Selector.build(start_ms=T0 + 95))
    assert origin == "ring" and [e.timestamp - T0 for e in found] == [95, 96, 97, 98, 99]
    # Newest-first page that fits in the ring: ring.
    found, origin = store.query(Selector.build(limit=3, newest_first=True))
    assert origin == "ring" and [e.timestamp - T0 for e in found] == [99, 98, 97]
    # Same answer as SQLite would give.
    assert [e.sequence for e in store.db.select(Selector.build(limit=3, newest_first=True))] == [
        e.sequence for e in found
    ]


def test_restart_warms_the_ring_from_sqlite(tmp_path):
    store = LogStore(str(tmp_path), ring_size=10)
    store.append([entry(i) for i in range(30)])
    store.close()
    again = LogStore(str(tmp_path), ring_size=10)
    assert len(again.ring) == 10
    found, origin = again.query(Selector.build())
    assert origin == "sqlite" and len(found) == 30
    stored, _ = again.append([entry(30)])
    assert stored[0].sequence == 31
    again.close()


def test_message_over_64_kib_is_cut_with_a_marker(tmp_path):
    store = LogStore(str(tmp_path), ring_size=10)
    big = "é" * 40_000  # 80,000 bytes of UTF-8
    stored, cut = store.append([entry(1, big), entry(2, "small")])
    assert cut == 1
    text = stored[0].message
    assert len(text.encode()) <= MAX_MESSAGE_BYTES
    assert text.startswith("éé") and text.endswith("bytes]") and "…[truncated " in text
    kept = len(text.encode()) - len(text[text.index("…[") :].encode())
    assert f"[truncated {80_000 - kept} bytes]" in text
    assert stored[1].message == "small"
    assert truncate_message("short") == ("short", False)


def test_retention_keeps_newest_entries(tmp_path):
    store = LogStore(str(tmp_path), ring_size=10, retention=1000)
    for start in range(0, 12_000, 2000):
        store.append([entry(i, f"line {i}") for i in range(start, start + 2000)])
    assert store.db is not None
    count = store.db.count()
    assert 1000 <= count <= 1000 + 10_000
    oldest = store.db.select(Selector.build(limit=1))[0]
    assert oldest.message != "line 0"
    # FTS rows were deleted with their entries: a search for a pruned line finds nothing.
    assert store.db.select(Selector.build(search="line 0")) == []
    store.close()


def test_ndjson_export_uses_the_json_line_contract(tmp_path):
    store = LogStore(str(tmp_path), ring_size=10)
    store.append([entry(1, "Add(2,3) = 5", correlation_id="req-123", metadata={"peer": "x"}), entry(2)])
    out = io.StringIO()
    assert store.export_ndjson(out) == 2
    first = json.loads(out.getvalue().splitlines()[0])
    assert first["message"] == "Add(2,3) = 5" and first["level"] == "INFO"
    assert first["correlation_id"] == "req-123" and first["service"] == "calculator" and first["peer"] == "x"
    store.close()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(min_level=9), "unknown log level 9"),
        (dict(start_ms=T0 + 10, end_ms=T0), "is before start time"),
        (dict(services=["calculator", ""]), "empty service name"),
        (dict(instances=[" "]), "empty instance id"),
        (dict(limit=-1), "limit -1 is out of range"),
        (dict(search="(!)"), "no letters or digits"),
    ],
)
def test_bad_selectors_are_refused_with_a_message(kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        Selector.build(**kwargs)
