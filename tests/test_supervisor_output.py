"""Output capture pieces without processes: the ring, the line reader, the late-bound tap."""

from __future__ import annotations

import asyncio

from runtime.supervisor.output import OutputRing, OutputTap, read_lines


def test_ring_keeps_the_last_lines_per_pid() -> None:
    ring = OutputRing(size=3)
    for i in range(5):
        ring.add(1000 + i, "stdout" if i % 2 else "stderr", f"line {i}", pid=7 if i < 3 else 8)
    assert [ln.text for ln in ring.tail(10)] == ["line 2", "line 3", "line 4"]
    assert ring.last_text(10, pid=8) == ["line 3", "line 4"]
    assert ring.tail(0) == []


def test_read_lines_strips_newlines_and_splits_huge_lines() -> None:
    async def run() -> list[tuple[str, str]]:
        reader = asyncio.StreamReader(limit=16)
        reader.feed_data(b"hello\r\nw\xc3\xb6rld\n" + b"x" * 40 + b"\nlast")
        reader.feed_eof()
        got: list[tuple[str, str]] = []
        await read_lines(reader, "stdout", lambda stream, ts, text: got.append((stream, text)))
        return got

    got = asyncio.run(run())
    assert got[:2] == [("stdout", "hello"), ("stdout", "wörld")]
    assert "".join(text for _, text in got[2:-1]) == "x" * 40
    assert got[-1] == ("stdout", "last")


def test_tap_keeps_lines_until_attached_then_forwards() -> None:
    tap = OutputTap(backlog=2)
    tap("svc", "svc-1", 1, "stdout", 10, "a")
    tap("svc", "svc-1", 1, "stdout", 11, "b")
    tap("svc", "svc-1", 1, "stderr", 12, "c")
    assert tap.dropped == 1 and not tap.attached
    seen: list[str] = []
    tap.attach(lambda service, iid, pid, stream, ts, line: seen.append(f"{stream}:{line}"))
    tap("svc", "svc-1", 1, "stdout", 13, "d")
    assert seen == ["stdout:b", "stderr:c", "stdout:d"]


def test_a_slow_event_subscriber_loses_the_oldest_and_is_told_how_many() -> None:
    import asyncio

    from runtime.supervisor.events import EventLog
    from runtime.v1 import supervisor_pb2 as pb

    async def scenario() -> list[tuple[int, int]]:
        log = EventLog()
        sub = log.subscribe(maxsize=3)
        for _ in range(10):
            log.emit(service="svc", instance_id="svc-1", kind=pb.PROCESS_EVENT_KIND_SIGNALED)
        got = [await sub.get() for _ in range(3)]
        log.emit(service="svc", instance_id="svc-1", kind=pb.PROCESS_EVENT_KIND_SIGNALED)
        got.append(await sub.get())
        return [(e.seq, e.dropped) for e in got if e is not None]

    # Seven oldest lost, said once on the first event after the loss; the shared history is untouched.
    assert asyncio.run(scenario()) == [(8, 7), (9, 0), (10, 0), (11, 0)]
