"""The per-minute counters the gateway keeps for each chute (the dashboard's plots and rates)."""

from __future__ import annotations

import time

from chutes_host.observability.metrics import MINUTES_KEPT, ChuteCounters, GpuHistory


def test_requests_errors_and_latency_add_up_per_minute() -> None:
    counters = ChuteCounters()
    for status, latency in ((200, 0.1), (200, 0.3), (503, 0.2), (0, 0.0)):
        counters.record(status, latency)
    rows = counters.per_minute()
    assert len(rows) == MINUTES_KEPT
    assert rows[-1][0] == int(time.time() // 60) * 60
    busy = [r for r in rows if r[1]]  # one minute (two, if the minute turned while recording)
    assert sum(r[1] for r in busy) == 4 and sum(r[2] for r in busy) == 2
    assert abs(sum(r[3] * r[1] for r in busy) - 0.6) < 1e-9
    assert (counters.requests, counters.errors) == (4, 2)  # the running totals /_metrics shows


def test_minutes_older_than_an_hour_fall_out() -> None:
    counters = ChuteCounters()
    now = time.time()
    counters.minutes.append([int(now // 60) - MINUTES_KEPT, 7, 1, 0.7])  # just over an hour ago
    counters.minutes.append([int(now // 60) - 1, 3, 0, 0.3])
    rows = counters.per_minute(now)
    assert sum(r[1] for r in rows) == 3 and rows[-2][1] == 3
    for _ in range(MINUTES_KEPT + 5):
        counters.minutes.append([0, 1, 0, 0.0])
    assert len(counters.minutes) == MINUTES_KEPT


def test_gpu_history_keeps_memory_used_only() -> None:
    history = GpuHistory()
    history.add({})
    history.add({"GPU-1": (5, 10, 50)}, now=100.0)
    assert list(history.samples) == [(100.0, {"GPU-1": 5})]
