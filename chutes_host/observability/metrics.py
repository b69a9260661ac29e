"""The host's /_metrics: per-GPU memory and use, and per-chute instances, requests and cold starts."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from chutes.metrics import escape
from chutes_host.scheduling.gpus import Inventory, NvmlUnavailable, nvml, usage
from chutes_host.scheduling.holdings import Holdings

MINUTES_KEPT = 60
GPU_SAMPLES_KEPT = 120  # one hour at GPU_SAMPLE_SECONDS
GPU_SAMPLE_SECONDS = 30.0


@dataclass
class ChuteCounters:
    """What the gateway and the supervisor count for one chute, across its versions."""

    in_flight: int = 0
    waiting: int = 0  # requests held by the gateway until an instance is ready or free
    cold_starts: int = 0
    cold_start_seconds: float = 0.0
    requests: int = 0  # every request forwarded to the chute, counted as it ends; the scaler tells idle from busy by it
    errors: int = 0
    # [minute, requests, errors, latency seconds summed] for the last hour, newest last (the dashboard's plots)
    minutes: deque = field(default_factory=lambda: deque(maxlen=MINUTES_KEPT), repr=False)

    def record(self, status: int, latency: float) -> None:
        """Counts one forwarded request: its status (0 when no answer started) and seconds to its first byte."""
        minute = int(time.time() // 60)
        minutes = self.minutes
        if not minutes or minutes[-1][0] != minute:
            minutes.append([minute, 0, 0, 0.0])
        bucket = minutes[-1]
        bucket[1] += 1
        bucket[3] += latency
        self.requests += 1
        if status >= 500 or status == 0:
            bucket[2] += 1
            self.errors += 1

    def per_minute(self, now: float | None = None) -> list[tuple[int, int, int, float]]:
        """Returns (minute start in unix seconds, requests, errors, mean latency) for each of the last 60 minutes."""
        last = int((time.time() if now is None else now) // 60)
        seen = {m[0]: m for m in list(self.minutes)}
        rows = []
        for minute in range(last - MINUTES_KEPT + 1, last + 1):
            _, requests, errors, latency = seen.get(minute, (minute, 0, 0, 0.0))
            rows.append((minute * 60, requests, errors, latency / requests if requests else 0.0))
        return rows


@dataclass
class HostCounters:
    """Counters by chute slug; the gateway and the supervisor write, /_metrics reads."""

    chutes: dict[str, ChuteCounters] = field(default_factory=dict)
    direct: int = (
        0  # requests the server protocol forwarded itself, without the ASGI gateway (chutes_host.gateway.fastpath)
    )
    handoffs: int = (
        0  # streams whose client connection the direct path handed to the instance (chutes_host.gateway.handoff)
    )

    def of(self, slug: str) -> ChuteCounters:
        found = self.chutes.get(slug)
        if found is None:
            found = self.chutes[slug] = ChuteCounters()
        return found


@dataclass
class GpuHistory:
    """Memory in use on each GPU over the last hour, sampled from NVML by the host (the dashboard's plot)."""

    samples: deque = field(default_factory=lambda: deque(maxlen=GPU_SAMPLES_KEPT))

    def add(self, usage: dict[str, tuple[int, int, int]], now: float | None = None) -> None:
        if usage:
            self.samples.append((time.time() if now is None else now, {u: v[0] for u, v in usage.items()}))


def read_gpu_usage(inventory: Inventory) -> dict[str, tuple[int, int, int]]:
    """Returns {uuid: (memory used, memory total, utilisation %)} from NVML (blocking; call off the loop)."""
    if inventory.source == "--gpus (declared)" or not inventory.gpus:
        return {}
    try:
        with nvml() as lib:
            return {g.uuid: found for g in inventory.gpus if (found := usage(lib, g.uuid)) is not None}
    except NvmlUnavailable:
        return {}


def render_host_metrics(
    holdings: Holdings, live: dict, counters: HostCounters, gpu_usage: dict[str, tuple[int, int, int]]
) -> str:
    """Returns the host's metrics in the Prometheus text format."""
    return "\n".join(_gpu_lines(holdings, gpu_usage)) + "\n" + "\n".join(_chute_lines(live, counters)) + "\n"


def _gpu_lines(holdings: Holdings, gpu_usage: dict[str, tuple[int, int, int]]) -> Iterator[str]:
    holders = {g["uuid"]: g["holder"] for g in holdings.snapshot()["gpus"]}
    gpus = [(g, f'index="{g.index}",uuid="{escape(g.uuid)}",name="{escape(g.name)}"') for g in holdings.inventory.gpus]
    yield "# HELP chutes_gpu_memory_total_bytes Memory of each GPU the host may place chutes on."
    yield "# TYPE chutes_gpu_memory_total_bytes gauge"
    for gpu, labels in gpus:
        yield f"chutes_gpu_memory_total_bytes{{{labels}}} {gpu.memory_bytes}"
    yield "# HELP chutes_gpu_assigned Whether an instance holds the GPU (its name in the instance label)."
    yield "# TYPE chutes_gpu_assigned gauge"
    for gpu, labels in gpus:
        holder = holders.get(gpu.uuid)
        yield f'chutes_gpu_assigned{{{labels},instance="{escape(holder or "")}"}} {int(holder is not None)}'
    if gpu_usage:
        yield "# HELP chutes_gpu_memory_used_bytes GPU memory in use (NVML)."
        yield "# TYPE chutes_gpu_memory_used_bytes gauge"
        for gpu, labels in gpus:
            if gpu.uuid in gpu_usage:
                yield f"chutes_gpu_memory_used_bytes{{{labels}}} {gpu_usage[gpu.uuid][0]}"
        yield "# HELP chutes_gpu_utilization_percent Share of time the GPU was busy over NVML's last sample."
        yield "# TYPE chutes_gpu_utilization_percent gauge"
        for gpu, labels in gpus:
            if gpu.uuid in gpu_usage:
                yield f"chutes_gpu_utilization_percent{{{labels}}} {gpu_usage[gpu.uuid][2]}"


def _chute_lines(live: dict, counters: HostCounters) -> Iterator[str]:
    yield "# HELP chutes_chute_instances Instances of each chute, by phase (pending: waiting for GPUs)."
    yield "# TYPE chutes_chute_instances gauge"
    for slug, dep in sorted(live.items()):
        for phase, count in sorted(Counter(i.phase for i in dep.instances).items()):
            yield f'chutes_chute_instances{{chute="{escape(slug)}",phase="{phase}"}} {count}'
    slugs = sorted(set(live) | set(counters.chutes))
    yield "# HELP chutes_gateway_direct_requests_total Requests forwarded without the ASGI gateway (the direct path)."
    yield "# TYPE chutes_gateway_direct_requests_total counter"
    yield f"chutes_gateway_direct_requests_total {counters.direct}"
    yield "# HELP chutes_gateway_handoffs_total Streams whose client connection was handed to the instance."
    yield "# TYPE chutes_gateway_handoffs_total counter"
    yield f"chutes_gateway_handoffs_total {counters.handoffs}"
    yield "# HELP chutes_chute_requests_in_flight Requests the gateway is forwarding to the chute now."
    yield "# TYPE chutes_chute_requests_in_flight gauge"
    for slug in slugs:
        yield f'chutes_chute_requests_in_flight{{chute="{escape(slug)}"}} {counters.of(slug).in_flight}'
    yield "# HELP chutes_chute_requests_total Requests the gateway forwarded to the chute."
    yield "# TYPE chutes_chute_requests_total counter"
    for slug in slugs:
        yield f'chutes_chute_requests_total{{chute="{escape(slug)}"}} {counters.of(slug).requests}'
    yield "# HELP chutes_chute_request_errors_total Forwarded requests answered with a 5xx, or not answered."
    yield "# TYPE chutes_chute_request_errors_total counter"
    for slug in slugs:
        yield f'chutes_chute_request_errors_total{{chute="{escape(slug)}"}} {counters.of(slug).errors}'
    yield "# HELP chutes_chute_requests_waiting Requests the gateway holds until an instance is ready or free."
    yield "# TYPE chutes_chute_requests_waiting gauge"
    for slug in slugs:
        yield f'chutes_chute_requests_waiting{{chute="{escape(slug)}"}} {counters.of(slug).waiting}'
    yield "# HELP chutes_chute_cold_start_seconds Time from starting an instance to its first ready answer."
    yield "# TYPE chutes_chute_cold_start_seconds summary"
    for slug in slugs:
        found = counters.of(slug)
        yield f'chutes_chute_cold_start_seconds_count{{chute="{escape(slug)}"}} {found.cold_starts}'
        yield f'chutes_chute_cold_start_seconds_sum{{chute="{escape(slug)}"}} {found.cold_start_seconds:.6f}'
