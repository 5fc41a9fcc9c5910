"""How long checks and vrrp_scripts take, counted in fixed buckets (a Prometheus histogram).

One set of bucket bounds for every duration the agent measures, so that dashboards can add
histograms together and `histogram_quantile` reads them all alike. A `Durations` keeps a
count per bucket and the sum, and costs one bisect per observation.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate
from typing import Optional

# Upper bounds in seconds (Prometheus' `le`): from a loopback TCP connect to a script that
# runs into a long timeout.
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Durations:
    """Observed durations: how many fell in each bucket (the last one: beyond BUCKETS)."""

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self._status: Optional[dict] = None  # status(), until the next observation

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds
        self._status = None

    def merge(self, other: Durations) -> None:
        self.counts = [mine + theirs for mine, theirs in zip(self.counts, other.counts)]
        self.sum += other.sum
        self._status = None

    def status(self) -> dict:
        """The status' form: cumulative counts per bound (`[(le, count), ...]`, as Prometheus
        counts them; pairs, as JSON writes them: `[[le, count], ...]`), the sum and the total
        count. A status has one per real server: kept until the next observation (callers
        only read it), tuples rather than 13 lists."""
        if self._status is None:
            cumulative = list(accumulate(self.counts))
            buckets = list(zip(BUCKETS, cumulative))
            self._status = {"buckets": buckets, "sum": self.sum, "count": cumulative[-1]}
        return self._status
