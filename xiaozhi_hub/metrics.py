"""Process-wide counters and latency samples, exported on ``/metrics`` (Prometheus text format)
and on the status page. Latencies keep the last ``WINDOW`` samples per name for percentiles."""

from __future__ import annotations

import collections
import statistics
from typing import Iterable

WINDOW = 512


def percentile(values: Iterable[float], p: float) -> float:
    data = sorted(values)
    if not data:
        return 0.0
    k = min(len(data) - 1, max(0, round(p / 100 * (len(data) - 1))))
    return data[k]


class Metrics:
    def __init__(self) -> None:
        self.counters: collections.Counter[str] = collections.Counter()
        self.latencies: dict[str, collections.deque[float]] = collections.defaultdict(
            lambda: collections.deque(maxlen=WINDOW))
        self.gauges: dict[str, float] = {}

    def inc(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def observe(self, name: str, seconds: float) -> None:
        self.latencies[name].append(seconds)

    def summary(self, name: str) -> dict[str, float]:
        values = self.latencies.get(name) or ()
        if not values:
            return {"count": 0}
        return {"count": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
                "mean": statistics.fmean(values)}

    def prometheus(self) -> str:
        lines: list[str] = []
        for name, value in sorted(self.counters.items()):
            lines.append(f"# TYPE xiaozhi_{name}_total counter")
            lines.append(f"xiaozhi_{name}_total {value}")
        for name, gauge in sorted(self.gauges.items()):
            lines.append(f"# TYPE xiaozhi_{name} gauge")
            lines.append(f"xiaozhi_{name} {gauge:g}")
        for name, values in sorted(self.latencies.items()):
            if not values:
                continue
            lines.append(f"# TYPE xiaozhi_{name}_seconds summary")
            for q in (0.5, 0.95, 0.99):
                lines.append(f'xiaozhi_{name}_seconds{{quantile="{q}"}} {percentile(values, q * 100):.4f}')
            lines.append(f"xiaozhi_{name}_seconds_count {len(values)}")
        return "\n".join(lines) + "\n"
