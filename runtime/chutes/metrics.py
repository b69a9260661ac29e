"""Request counts, latencies and in-flight requests, rendered as Prometheus text."""

from __future__ import annotations

from bisect import bisect_left

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Counts every cord request by cord and status, and its latency in a histogram."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, list[float]] = {}  # cord -> bucket counts (+Inf last), sum

    def observe(self, cord: str, method: str, status: int, seconds: float) -> None:
        key = (cord, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.latency.get(cord)
        if histogram is None:
            histogram = self.latency[cord] = [0] * (len(BUCKETS) + 1) + [0.0]
        histogram[bisect_left(BUCKETS, seconds)] += 1
        histogram[-1] += seconds

    def render(self, in_flight: int, ready: bool) -> str:
        """Returns the metrics in the Prometheus text exposition format."""
        lines = [
            "# HELP chutes_requests_total Requests served by each cord, by status.",
            "# TYPE chutes_requests_total counter",
        ]
        for (cord, method, status), count in sorted(self.requests.items()):
            lines.append(f'chutes_requests_total{{cord="{escape(cord)}",method="{method}",status="{status}"}} {count}')
        lines += [
            "# HELP chutes_request_duration_seconds Time to serve a cord request.",
            "# TYPE chutes_request_duration_seconds histogram",
        ]
        for cord, histogram in sorted(self.latency.items()):
            label = f'cord="{escape(cord)}"'
            cumulative = 0
            for bound, count in zip((*BUCKETS, "+Inf"), histogram[:-1], strict=True):
                cumulative += count
                lines.append(f'chutes_request_duration_seconds_bucket{{{label},le="{bound}"}} {cumulative}')
            lines.append(f"chutes_request_duration_seconds_sum{{{label}}} {histogram[-1]:.6f}")
            lines.append(f"chutes_request_duration_seconds_count{{{label}}} {cumulative}")
        lines += [
            "# HELP chutes_requests_in_flight Cord requests being served now.",
            "# TYPE chutes_requests_in_flight gauge",
            f"chutes_requests_in_flight {in_flight}",
            "# HELP chutes_ready Whether every startup hook has finished.",
            "# TYPE chutes_ready gauge",
            f"chutes_ready {int(ready)}",
        ]
        return "\n".join(lines) + "\n"


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
