"""Percentiles of a list of samples: one helper for the DEGRADED rule and every benchmark.

    >>> percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50)
    3.0
    >>> percentiles(list(range(1, 1001)), (50, 99, 99.9))
    {50: 500.5, 99: 990.01, 99.9: 999.001}

Built on ``statistics.quantiles`` with the "inclusive" method (linear interpolation between the
two nearest samples, the definition spreadsheets and numpy's default use), so the rule that turns
an instance DEGRADED and the benchmarks that report its p99 read the same number from the same
samples. The load generator's own figures come from an HDR histogram
(``runtime.services.load.histogram``): it counts millions of calls in fixed memory, where these
helpers take the samples a caller already holds. Lives in ``runtime.client`` because both an agent
(``runtime.agent.health_reporter``) and scripts outside the runtime (``benchmarks/``) import it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

# Cut points per call: 1000 resolves p99.9 (the finest percentile the lab reports).
RESOLUTION = 1000


def percentiles(values: Sequence[float], pcts: Iterable[float]) -> dict[float, float]:
    """The ``pcts`` percentiles (each 0..100, in steps of 0.1) of ``values``, from one sort.

    Empty ``values`` give 0.0 for every percentile (a window with no calls has no latency).

    Raises:
        ValueError: a percentile outside 0..100.
    """
    wanted = list(pcts)
    for pct in wanted:
        if not 0 <= pct <= 100:
            raise ValueError(f"percentile {pct!r} is outside 0..100")
    if not values:
        return {pct: 0.0 for pct in wanted}
    if len(values) == 1:
        return {pct: float(values[0]) for pct in wanted}
    cuts = statistics.quantiles(values, n=RESOLUTION, method="inclusive")
    low, high = min(values), max(values)
    out = {}
    for pct in wanted:
        index = round(pct * RESOLUTION / 100)
        out[pct] = float(low if index <= 0 else high if index >= RESOLUTION else cuts[index - 1])
    return out


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0..100) of ``values``; 0.0 when there are none.

    >>> percentile([10.0, 20.0], 100)
    20.0
    """
    return percentiles(values, (pct,))[pct]
