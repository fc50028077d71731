"""Latency bookkeeping of one load test: log-linear histograms, counters, errors -> LoadMetrics / LoadSummary.

    rec = LoadRecorder("t-1")
    rec.sent(lag_s=0.0004)
    rec.done(latency_s=0.0021, code="")            # "" = OK, else the gRPC status name
    rec.interval(now_s=1.0)                        # LoadMetrics of the last interval
    rec.summary(elapsed_s=2.0)                     # LoadSummary of the whole run

Latencies are counted in microseconds from 1 us to ``HIGHEST_US`` in log-linear buckets
(``Histogram``): exact below 2048 us, then 2048 buckets per power of two (0.05 % resolution, as
fine as an HDR histogram with 3 significant figures); a larger value is clamped to the highest
trackable one, so nothing is dropped. Memory is bounded by the bucket count (at most ~55k),
whatever the run's length.

Why not HdrHistogram (``hdrh``, used before): its ``record_value`` is Python, ~7 us per value,
and every request records four values (lag and latency, run and interval): ~30 us of the
generator's CPU per request at 1000 rps, plus the percentiles each second on its event loop.
A dict increment here costs ~1 us.

Per-interval metrics carry the percentiles of the calls that *finished* in that interval; the
final metrics and the summary carry those of the whole run.
"""

from __future__ import annotations

import time
from collections import Counter

from runtime.v1 import load_pb2

LOWEST_US = 1
HIGHEST_US = 120_000_000  # 2 minutes: above any per-request deadline the limits allow
SUB_BUCKET_BITS = 11  # 2048 buckets per power of two: 0.05 % resolution above 2048 us
PERCENTILES = (50.0, 95.0, 99.0, 99.9)


def _us(seconds: float) -> int:
    return min(HIGHEST_US, max(LOWEST_US, int(seconds * 1_000_000)))


class Histogram:
    """Counts of microsecond values in log-linear buckets (exact up to 2047 us).

    Example:
        >>> h = Histogram()
        >>> for us in range(1, 101): h.record(us)
        >>> h.total, h.percentiles_ms()[50.0], h.min_us, h.max_us
        (100, 0.05, 1, 100)
    """

    __slots__ = ("counts", "total", "sum_us", "min_us", "max_us")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.sum_us = 0
        self.min_us = 0
        self.max_us = 0

    def record(self, us: int) -> None:
        """Count one value (microseconds, already within LOWEST_US..HIGHEST_US)."""
        self.total += 1
        self.sum_us += us
        if us > self.max_us:
            self.max_us = us
        if us < self.min_us or self.total == 1:
            self.min_us = us
        bits = us.bit_length()
        if bits > SUB_BUCKET_BITS:
            shift = bits - SUB_BUCKET_BITS
            us = us >> shift << shift
        counts = self.counts
        counts[us] = counts.get(us, 0) + 1

    def add(self, other: Histogram) -> None:
        """Add ``other``'s counts to this one."""
        if not other.total:
            return
        counts = self.counts
        for key, n in other.counts.items():
            counts[key] = counts.get(key, 0) + n
        self.min_us = other.min_us if not self.total else min(self.min_us, other.min_us)
        self.max_us = max(self.max_us, other.max_us)
        self.total += other.total
        self.sum_us += other.sum_us

    def merged(self, other: Histogram) -> Histogram:
        """A new histogram holding both."""
        both = Histogram()
        both.add(self)
        both.add(other)
        return both

    def reset(self) -> None:
        """Forget every value."""
        self.counts = {}
        self.total = self.sum_us = self.min_us = self.max_us = 0

    def mean_ms(self) -> float:
        """The exact mean (0 when empty)."""
        return self.sum_us / self.total / 1000.0 if self.total else 0.0

    def percentiles_ms(self) -> dict[float, float]:
        """p50/p95/p99/p99.9 in milliseconds (zeros for an empty histogram).

        The value at percentile p is the highest value of the bucket holding the
        round(p % of the count)-th value (at least the first), as HdrHistogram reports it.
        """
        if not self.total:
            return dict.fromkeys(PERCENTILES, 0.0)
        wanted = sorted((max(1, int(p / 100.0 * self.total + 0.5)), p) for p in PERCENTILES)
        out: dict[float, float] = {}
        seen = 0
        k = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            while k < len(wanted) and seen >= wanted[k][0]:
                out[wanted[k][1]] = min(self.max_us, _bucket_top(key)) / 1000.0
                k += 1
            if k == len(wanted):
                break
        return out


def _bucket_top(key: int) -> int:
    bits = key.bit_length()
    return key if bits <= SUB_BUCKET_BITS else key + (1 << (bits - SUB_BUCKET_BITS)) - 1


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
        # The run's histograms hold the finished intervals; the current one is added when it ends
        # (``interval``) or looked at beside them (``final``, ``summary``): one record per value.
        self._run_latency = Histogram()
        self._run_lag = Histogram()
        self._interval_latency = Histogram()
        self._interval_lag = Histogram()
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
        self._interval_lag.record(_us(lag_s))

    def done(self, latency_s: float, code: str) -> None:
        """One request ended ``latency_s`` after its intended send time; ``code`` "" means OK."""
        self._interval_latency.record(_us(latency_s))
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
        self._interval_latency.record(_us(waited_s))

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
        self._run_latency.add(self._interval_latency)
        self._run_lag.add(self._interval_lag)
        self._interval_latency = Histogram()
        self._interval_lag = Histogram()
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

    @property
    def latency(self) -> Histogram:
        """Latencies of the whole run so far (a new histogram: the run's plus the current interval)."""
        return self._run_latency.merged(self._interval_latency)

    @property
    def lag(self) -> Histogram:
        """Send lags of the whole run so far (a new histogram, as ``latency``)."""
        return self._run_lag.merged(self._interval_lag)

    def _metrics(self, latency: Histogram, lag: Histogram, rps: float) -> load_pb2.LoadMetrics:
        p = latency.percentiles_ms()
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
            send_lag_p99_ms=lag.percentiles_ms()[99.0],
            error_counts=dict(self.errors),
            expired_before_send=self.expired_count,
        )

    def summary(self, elapsed_s: float) -> load_pb2.LoadSummary:
        """The LoadSummary of the whole run (achieved rate over ``elapsed_s``)."""
        latency = self.latency
        p = latency.percentiles_ms()
        return load_pb2.LoadSummary(
            test_id=self.test_id,
            total_requests=self.sent_count,
            total_succeeded=self.succeeded,
            total_failed=self.failed,
            avg_latency_ms=latency.mean_ms(),
            min_latency_ms=latency.min_us / 1000.0,
            max_latency_ms=latency.max_us / 1000.0,
            error_counts=dict(self.errors),
            latency_p50_ms=p[50.0],
            latency_p95_ms=p[95.0],
            latency_p99_ms=p[99.0],
            latency_p999_ms=p[99.9],
            achieved_rps=self.sent_count / max(1e-6, elapsed_s),
            expired_before_send=self.expired_count,
        )
