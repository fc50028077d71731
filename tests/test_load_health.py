"""The load + health chart of chapter 05: the periods it draws are the ones the self-check reads."""

from __future__ import annotations

import pandas as pd

from widgets.health_view import STATE_COLORS
from widgets.load_health import (
    DEGRADED_P99_MS,
    contains_run,
    load_health_figure,
    state_sequence,
    window_segments,
)

T0 = pd.Timestamp("2026-12-01 10:00:00", tz="UTC")


def at(seconds: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


def history() -> pd.DataFrame:
    """calculator-1 degrades under the fault and recovers; calculator-2 stays HEALTHY."""
    rows = [
        (0, "calculator-1", "UNKNOWN", "HEALTHY", "serving"),
        (0, "calculator-2", "UNKNOWN", "HEALTHY", "serving"),
        (11, "calculator-1", "HEALTHY", "DEGRADED", "p99 latency 301 ms above 250 ms"),
        (12, "calculator-1", "DEGRADED", "DEGRADED", "a note, not a change"),
        (18, "calculator-1", "DEGRADED", "HEALTHY", "latency back to normal"),
        (30, "calculator-1", "HEALTHY", "UNHEALTHY", "killed by SIGKILL"),  # after the window
    ]
    return pd.DataFrame(
        [
            {
                "time": at(t),
                "service": "calculator",
                "instance": i,
                "old_state": o,
                "new_state": n,
                "reason": r,
            }
            for t, i, o, n, r in rows
        ]
    )


def load_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"time": [at(11), at(12), at(13)], "p50_ms": [300.0, 301.0, 302.0], "p99_ms": [310.0, 320.0, 330.0]}
    )


def test_window_keeps_the_state_at_its_start_and_clips_both_ends() -> None:
    segments = window_segments(history(), at(10), at(20))
    one = segments[segments.instance == "calculator-1"]
    assert list(one.state) == ["HEALTHY", "DEGRADED", "HEALTHY"]
    assert list(one.start) == [at(10), at(11), at(18)]  # the first clipped to the window's start
    assert list(one.end) == [at(11), at(18), at(20)]  # the last clipped to its end, the kill left out
    assert "p99 latency" in one.reason.iloc[1]
    two = segments[segments.instance == "calculator-2"]
    assert list(two.state) == ["HEALTHY"] and two.start.iloc[0] == at(10) and two.end.iloc[0] == at(20)


def test_sequence_merges_repeats_and_finds_the_round_trip() -> None:
    segments = window_segments(history(), at(10), at(20))
    assert state_sequence(segments, "calculator-1") == ["HEALTHY", "DEGRADED", "HEALTHY"]
    assert contains_run(state_sequence(segments, "calculator-1"), ["HEALTHY", "DEGRADED", "HEALTHY"])
    assert not contains_run(state_sequence(segments, "calculator-2"), ["HEALTHY", "DEGRADED", "HEALTHY"])
    # A window that ends while it is still DEGRADED has no way back in it.
    early = window_segments(history(), at(10), at(15))
    assert state_sequence(early, "calculator-1") == ["HEALTHY", "DEGRADED"]
    assert state_sequence(early, "calculator-3") == []


def test_figure_draws_the_latency_and_one_coloured_band_per_period() -> None:
    segments = window_segments(history(), at(10), at(20))
    fig = load_health_figure(load_frame(), segments, spans={"fault": (at(10.5), at(14.5))})
    lines = {t.name: t for t in fig.data if t.yaxis == "y"}
    assert list(lines["p99"].y) == [310.0, 320.0, 330.0] and list(lines["p99"].x) == list(load_frame().time)
    bands = [t for t in fig.data if t.yaxis == "y2" and t.mode == "lines"]
    assert [(t.y[0], t.name) for t in bands] == [
        ("calculator-1", "HEALTHY"), ("calculator-1", "DEGRADED"), ("calculator-1", "HEALTHY"),
        ("calculator-2", "HEALTHY"),
    ]  # fmt: skip
    assert all(t.line.color == STATE_COLORS[t.name] for t in bands)
    assert [t.name for t in bands if t.showlegend] == ["HEALTHY", "DEGRADED"]  # one legend entry per state
    markers = [t for t in fig.data if t.yaxis == "y2" and t.mode == "markers"]
    assert "p99 latency 301 ms" in markers[1].hovertext[0]
    assert any(s.y0 == DEGRADED_P99_MS and s.y1 == DEGRADED_P99_MS for s in fig.layout.shapes)  # the rule
    assert sum(1 for s in fig.layout.shapes if s.type == "rect") == 2  # the fault on both rows
    assert any(a.text == "fault ->" for a in fig.layout.annotations)
