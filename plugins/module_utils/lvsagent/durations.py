"""How long checks and vrrp_scripts take, counted in fixed buckets (a Prometheus histogram).

One set of bucket bounds for every duration the agent measures, so that dashboards can add
histograms together and `histogram_quantile` reads them all alike. A `Durations` keeps a
count per bucket and the sum, and costs one bisect per observation.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds in seconds (Prometheus' `le`): from a loopback TCP connect to a script that
# runs into a long timeout.
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Durations:
    """Observed durations: how many fell in each bucket (the last one: beyond BUCKETS)."""

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    def merge(self, other: Durations) -> None:
        self.counts = [mine + theirs for mine, theirs in zip(self.counts, other.counts)]
        self.sum += other.sum

    def status(self) -> dict:
        """The status' form: cumulative counts per bound (`[[le, count], ...]`, as Prometheus
        counts them), the sum and the total count."""
        cumulative, total = [], 0
        for bound, count in zip(BUCKETS, self.counts):
            total += count
            cumulative.append([bound, total])
        return {"buckets": cumulative, "sum": self.sum, "count": total + self.counts[-1]}
