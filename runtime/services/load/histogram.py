"""Latency bookkeeping of one load test: HDR histograms, counters, errors -> LoadMetrics / LoadSummary.

    rec = LoadRecorder("t-1")
    rec.sent(lag_s=0.0004)
    rec.done(latency_s=0.0021, code="")            # "" = OK, else the gRPC status name
    rec.interval(now_s=1.0)                        # LoadMetrics of the last interval
    rec.summary(elapsed_s=2.0)                     # LoadSummary of the whole run

Latencies are recorded in microseconds from 1 us to ``HIGHEST_US`` with 3 significant figures
for the whole run and 2 for each interval (HdrHistogram); a larger value is clamped to the highest trackable one, so nothing is dropped.
Per-interval metrics carry the percentiles of the calls that *finished* in that interval; the
final metrics and the summary carry those of the whole run.
"""

from __future__ import annotations

import time
from collections import Counter

from hdrh.histogram import HdrHistogram

from runtime.v1 import load_pb2

LOWEST_US = 1
HIGHEST_US = 120_000_000  # 2 minutes: above any per-request deadline the limits allow
SIGNIFICANT_FIGURES = 3
# The per-second histograms: 2 figures (1 % resolution, plenty for a chart) make their percentiles
# and reset 10-20x cheaper (0.1 ms instead of 2.5 ms each). They run on the generator's event loop
# every second, and a stall there delays the requests due meanwhile (the schedule lag p99).
INTERVAL_SIGNIFICANT_FIGURES = 2
PERCENTILES = (50.0, 95.0, 99.0, 99.9)


def new_histogram(significant_figures: int = SIGNIFICANT_FIGURES) -> HdrHistogram:
    """An empty latency histogram in microseconds."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, significant_figures)


def _us(seconds: float) -> int:
    return min(HIGHEST_US, max(LOWEST_US, int(seconds * 1_000_000)))


def percentiles_ms(hist: HdrHistogram) -> dict[float, float]:
    """p50/p95/p99/p99.9 in milliseconds (zeros for an empty histogram)."""
    if hist.get_total_count() == 0:
        return dict.fromkeys(PERCENTILES, 0.0)
    values = hist.get_percentile_to_value_dict(list(PERCENTILES))
    return {p: values[p] / 1000.0 for p in PERCENTILES}


class LoadRecorder:
    """Counts and histograms of one load test, for the whole run and for the current interval.

    Example:
        >>> rec = LoadRecorder("t-1")
        >>> rec.sent(0.001); rec.done(0.002, "")
        >>> m = rec.interval(now_s=1.0)
        >>> m.requests_sent, m.requests_succeeded, round(m.latency_p50_ms)
        (1, 1, 2)
    """

    def __init__(self, test_id: str, *, started_s: float = 0.0) -> None:
        self.test_id = test_id
        self.sent_count = 0
        self.succeeded = 0
        self.failed = 0
        self.expired_count = 0
        self.errors: Counter[str] = Counter()
        self.latency = new_histogram()
        self.lag = new_histogram()
        self._interval_latency = new_histogram(INTERVAL_SIGNIFICANT_FIGURES)
        self._interval_lag = new_histogram(INTERVAL_SIGNIFICANT_FIGURES)
        self._interval_sent = 0
        self._interval_start_s = started_s
        self.latest: load_pb2.LoadMetrics | None = None

    def begin(self, start_s: float) -> None:
        """The first interval starts at ``start_s`` (the test's clock)."""
        self._interval_start_s = start_s

    def sent(self, lag_s: float) -> None:
        """One request left ``lag_s`` seconds after its intended send time."""
        self.sent_count += 1
        self._interval_sent += 1
        us = _us(lag_s)
        self.lag.record_value(us)
        self._interval_lag.record_value(us)

    def done(self, latency_s: float, code: str) -> None:
        """One request ended ``latency_s`` after its intended send time; ``code`` "" means OK."""
        us = _us(latency_s)
        self.latency.record_value(us)
        self._interval_latency.record_value(us)
        if code:
            self.failed += 1
            self.errors[code] += 1
        else:
            self.succeeded += 1

    def expired(self, waited_s: float) -> None:
        """A request whose deadline passed while it waited for a free slot: never put on the wire.

        Not sent, so not in ``requests_sent`` nor in the rate (which counts what reached the
        target); counted as ``expired_before_send``, and its wait is recorded as its latency, so
        an overloaded generator shows in the percentiles instead of hiding its backlog.
        """
        self.expired_count += 1
        us = _us(waited_s)
        self.latency.record_value(us)
        self._interval_latency.record_value(us)

    @property
    def interval_start_s(self) -> float:
        """When the current interval began (the test's clock)."""
        return self._interval_start_s

    @property
    def interval_sent(self) -> int:
        """Requests sent since the last interval."""
        return self._interval_sent

    def interval(self, now_s: float, sending_until_s: float | None = None) -> load_pb2.LoadMetrics:
        """LoadMetrics since the previous interval (percentiles of that interval), then start a new one.

        ``sending_until_s``: when sending stopped within this interval (the rate counts up to then).
        """
        until = now_s if sending_until_s is None else min(now_s, sending_until_s)
        span = max(1e-6, until - self._interval_start_s)
        metrics = self._metrics(self._interval_latency, self._interval_lag, self._interval_sent / span)
        self._interval_latency.reset()
        self._interval_lag.reset()
        self._interval_sent = 0
        self._interval_start_s = now_s
        self.latest = metrics
        return metrics

    def final(self, elapsed_s: float) -> load_pb2.LoadMetrics:
        """The last LoadMetrics (final=True): whole-run percentiles, achieved rate over ``elapsed_s``."""
        metrics = self._metrics(self.latency, self.lag, self.sent_count / max(1e-6, elapsed_s))
        metrics.final = True
        self.latest = metrics
        return metrics

    def _metrics(self, latency: HdrHistogram, lag: HdrHistogram, rps: float) -> load_pb2.LoadMetrics:
        p = percentiles_ms(latency)
        return load_pb2.LoadMetrics(
            test_id=self.test_id,
            requests_sent=self.sent_count,
            requests_succeeded=self.succeeded,
            requests_failed=self.failed,
            latency_p50_ms=p[50.0],
            latency_p95_ms=p[95.0],
            latency_p99_ms=p[99.0],
            latency_p999_ms=p[99.9],
            current_rps=rps,
            timestamp=time.time_ns() // 1_000_000,
            send_lag_p99_ms=percentiles_ms(lag)[99.0],
            error_counts=dict(self.errors),
            expired_before_send=self.expired_count,
        )

    def summary(self, elapsed_s: float) -> load_pb2.LoadSummary:
        """The LoadSummary of the whole run (achieved rate over ``elapsed_s``)."""
        p = percentiles_ms(self.latency)
        count = self.latency.get_total_count()
        return load_pb2.LoadSummary(
            test_id=self.test_id,
            total_requests=self.sent_count,
            total_succeeded=self.succeeded,
            total_failed=self.failed,
            avg_latency_ms=self.latency.get_mean_value() / 1000.0 if count else 0.0,
            min_latency_ms=self.latency.get_min_value() / 1000.0 if count else 0.0,
            max_latency_ms=self.latency.get_max_value() / 1000.0 if count else 0.0,
            error_counts=dict(self.errors),
            latency_p50_ms=p[50.0],
            latency_p95_ms=p[95.0],
            latency_p99_ms=p[99.0],
            latency_p999_ms=p[99.9],
            achieved_rps=self.sent_count / max(1e-6, elapsed_s),
            expired_before_send=self.expired_count,
        )
