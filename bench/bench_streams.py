"""Benchmark of the LLM streaming shape: thousands of slow SSE streams open through the gateway at once.

    .venv/bin/python bench/bench_streams.py [--streams 2000] [--events 100] [--interval 0.05] [--rounds 1]
                                            [--lockstep] [--stream-handoff]

It starts a real `chutes host serve` (process executor, pinned to --host-cores) on a temporary data dir,
deploys one public chute (its instance pinned to core 0), and opens --streams SSE streams of --events
events, one every --interval seconds, first to the same chute served by `python -m chutes.serve` on a
port of its own (the host's instance listens on a Unix socket only) and then through the
gateway, in one run. Each event carries the time the instance produced it; the client (plain asyncio
protocols, unpinned) records when it arrived. It reports failed streams, the host's RSS growth per
open stream (the host's VmRSS with every stream open minus before, over --streams), and the event
delay p50/p99 of both runs: the gateway's share is the difference. By default the host relays every
stream; --stream-handoff starts it declared single-tenant with stream handoff, which hands each stream's
client connection to the instance instead.
With --rounds N the direct and gateway runs alternate N times and the medians are reported (the p99
of one run swings by several ms on a shared machine). --lockstep gives every stream its events at the
same instants, the shape of an LLM whose batched decode step gives each sequence its token at once.

Goals (issue 9): no errors; under 50 KiB of host memory per open stream; event delay p99 added by
the gateway under 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_gateway import Bench  # noqa: E402

# Connections opened per batch, and the pause between batches, so the listen backlog never overflows.
BATCH = 100
BATCH_PAUSE = 0.02


class SSEStream(asyncio.Protocol):
    """One POST /ticks; decodes the chunked response and records each event's delay from its
    `"t": <epoch>` field."""

    def __init__(self, request: bytes, delays: list[float], done: asyncio.Future) -> None:
        self.request = request
        self.delays = delays
        self.done = done
        self.raw = b""
        self.body = b""
        self.status = b""
        self.events = 0
        self.in_head = True
        self.finished = False

    def connection_made(self, transport: asyncio.Transport) -> None:
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        raw = self.raw + data
        if self.in_head:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                self.raw = raw
                return
            self.status, raw, self.in_head = raw[9:12], raw[end + 4 :], False
        while True:  # chunked transfer coding: "<hex size>\r\n<data>\r\n"
            line = raw.find(b"\r\n")
            if line < 0:
                break
            size = int(raw[:line].split(b";")[0], 16)
            if len(raw) < line + 2 + size + 2:
                break
            if size == 0:
                self.finished = True
                raw = b""
                break
            self.body += raw[line + 2 : line + 2 + size]
            raw = raw[line + 2 + size + 2 :]
        self.raw = raw
        frames = self.body.split(b"\n\n")
        self.body = frames.pop()
        for frame in frames:
            mark = frame.find(b'"t":')
            if mark >= 0:
                self.delays.append((now - float(frame[mark + 4 : frame.index(b"}", mark)])) * 1000)
                self.events += 1
        if self.finished and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def run_streams(
    port: int, host_header: str, *, streams: int, events: int, interval: float, lockstep: bool, sample: callable
) -> tuple[list[float], int, float]:
    """Opens the streams; returns (delays in ms, failed streams, what `sample()` gave with all open)."""
    body = b'{"count": %d, "interval": %s, "lockstep": %s}' % (
        events,
        str(interval).encode(),
        b"true" if lockstep else b"false",
    )
    request = (
        b"POST /ticks HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (host_header.encode(), len(body), body)
    )
    loop = asyncio.get_running_loop()
    delays: list[float] = []
    protocols: list[SSEStream] = []
    failures = 0
    for first in range(0, streams, BATCH):
        batch = []
        for _ in range(first, min(first + BATCH, streams)):
            done = loop.create_future()
            batch.append(loop.create_connection(lambda d=done: SSEStream(request, delays, d), "127.0.0.1", port))
        for result in await asyncio.gather(*batch, return_exceptions=True):
            if isinstance(result, BaseException):
                failures += 1
            else:
                protocols.append(result[1])
        await asyncio.sleep(BATCH_PAUSE)
    await asyncio.sleep(interval * 5)  # every stream is flowing
    sampled = sample()
    await asyncio.wait_for(asyncio.gather(*(p.done for p in protocols)), timeout=events * interval * 4 + 60)
    failures += sum(1 for p in protocols if p.status != b"200" or p.events != events)
    return delays, failures, sampled


def own_cpu_seconds() -> float:
    """Returns the user + system CPU seconds this process (the clients) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """Returns the user + system CPU seconds a process (all its threads, not its children) has used."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """Returns the user and the system CPU seconds a process (all its threads, not its children) has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"Error: needs {needed} open files, the hard limit is {hard}; raise it (ulimit -Hn)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=2000, help="SSE streams open at once")
    parser.add_argument("--events", type=int, default=100, help="events per stream")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between a stream's events")
    parser.add_argument("--rounds", type=int, default=1, help="direct and gateway runs, alternating; medians reported")
    parser.add_argument(
        "--lockstep",
        action="store_true",
        help="every stream's events at the same instants (multiples of --interval), as a batched decode step gives "
        "each sequence its token at once; by default each stream keeps its own pace from its start",
    )
    parser.add_argument("--host-cores", default="1", help="cores the host may use, for taskset (e.g. 0,1)")
    parser.add_argument("--sandbox", choices=("auto", "bwrap", "off"), default="auto", help="the host's --sandbox")
    parser.add_argument(
        "--stream-handoff",
        action="store_true",
        help="start the host with --single-tenant --stream-handoff (it hands streams to the instance)",
    )
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        raise SystemExit("Error: needs taskset; install it with: apt-get install -y util-linux")
    if args.rounds < 1:
        raise SystemExit("Error: --rounds must be at least 1")
    raise_open_files(args.streams * 3 + 1024)  # the host and its instance inherit it
    root = Path(tempfile.mkdtemp(prefix="chutes-bench-streams-"))
    handoff = ("--single-tenant", "--stream-handoff") if args.stream_handoff else ()
    bench = Bench(root, sandbox=args.sandbox, host_args=handoff)
    rounds = []
    try:
        bench.deploy("llm", public=True)
        served, port = bench.serve_directly("llm")  # the host's instance has no port: the same code, served on one
        pid = bench.instance_pid("llm")
        subprocess.run(["taskset", "-pc", "0", str(pid)], check=True, capture_output=True)
        subprocess.run(["taskset", "-pc", args.host_cores, str(bench.host.pid)], check=True, capture_output=True)
        via_host = f"bench-llm.localhost:{bench.port}"
        common = dict(streams=args.streams, events=args.events, interval=args.interval, lockstep=args.lockstep)
        asyncio.run(run_streams(port, "x", **{**common, "streams": 50}, sample=lambda: 0))  # warm-up
        asyncio.run(run_streams(bench.port, via_host, **{**common, "streams": 50}, sample=lambda: 0))
        for _ in range(args.rounds):
            served_before, wall = cpu_seconds(served.pid), time.monotonic()
            direct = asyncio.run(run_streams(port, "x", **common, sample=lambda: 0))
            served_cores = (cpu_seconds(served.pid) - served_before) / (time.monotonic() - wall)
            load = os.getloadavg()[0]
            before, cpu_before = rss_kib(bench.host.pid), cpu_split(bench.host.pid)
            instance_before, client_before, wall = cpu_seconds(pid), own_cpu_seconds(), time.monotonic()
            via = asyncio.run(run_streams(bench.port, via_host, **common, sample=lambda: rss_kib(bench.host.pid)))
            wall = time.monotonic() - wall
            user, system = (now - then for now, then in zip(cpu_split(bench.host.pid), cpu_before, strict=True))
            host_cpu = user + system
            relayed = max(len(via[0]), 1)
            cores = (cpu_seconds(pid) - instance_before, host_cpu, own_cpu_seconds() - client_before)
            rounds.append(
                Round(
                    direct,
                    via,
                    per_stream=(via[2] - before) / args.streams,
                    host_us_per_event=host_cpu / relayed * 1e6,
                    host_user_us=user / relayed * 1e6,
                    host_system_us=system / relayed * 1e6,
                    load=(load, os.getloadavg()[0]),
                    served_cores=served_cores,
                    cores=tuple(seconds / wall for seconds in cores),
                )
            )
    finally:
        bench.close()
        shutil.rmtree(root, ignore_errors=True)
    report(args, rounds)


class Round:
    """One direct run and the gateway run after it: (delays in ms, failed streams, sample) each."""

    def __init__(self, direct: tuple, via: tuple, **figures: float | tuple) -> None:
        self.direct, self.via = direct, via
        self.failed = direct[1] + via[1]
        self.p99 = tuple(statistics.quantiles(run[0], n=100)[98] for run in (direct, via))
        self.added = self.p99[1] - self.p99[0]
        self.__dict__.update(figures)


def report(args, rounds: list[Round]) -> None:
    pace = "in lockstep" if args.lockstep else "each at its own pace"
    print(
        f"\n{args.streams} SSE streams x {args.events} events, one every {args.interval * 1000:.0f} ms, {pace} "
        f"({args.streams / args.interval:.0f} events/s)"
    )
    print(f"{'path':<10}{'failed streams':>16}{'events':>9}{'delay p50 ms':>14}{'delay p99 ms':>14}{'round':>7}")
    for n, done in enumerate(rounds, 1):
        for name, (delays, failed, _) in (("direct", done.direct), ("gateway", done.via)):
            p50, p99 = statistics.median(delays), statistics.quantiles(delays, n=100)[98]
            print(f"{name:<10}{failed:>16}{len(delays):>9}{p50:>14.2f}{p99:>14.2f}{n:>7}")
    errors = sum(done.failed for done in rounds)
    per_stream = max(done.per_stream for done in rounds)  # the first round's: later ones reuse its memory
    added = statistics.median(done.added for done in rounds)
    print(f"\nerrors: {errors} (goal 0: {_verdict(errors == 0)})")
    print(f"host memory per open stream: {per_stream:.1f} KiB (goal < 50 KiB: {_verdict(per_stream < 50)})")
    each = ", ".join(f"{done.added:.2f}" for done in rounds)
    over = f" (median of {len(rounds)} rounds: {each})" if len(rounds) > 1 else ""
    print(f"event delay p99 added by the gateway: {added:.2f} ms{over} (goal < 5 ms: {_verdict(added < 5)})")
    how = "handed to the instance (--stream-handoff)" if args.stream_handoff else "relayed by the host"
    host_us, user_us, system_us = (
        statistics.median(getattr(done, name) for done in rounds)
        for name in ("host_us_per_event", "host_user_us", "host_system_us")
    )
    each = ", ".join(f"{done.host_us_per_event:.1f}" for done in rounds)
    over = f"; median of {len(rounds)} rounds: {each}" if len(rounds) > 1 else ""
    print(
        f"streams {how}; host CPU per event: {host_us:.1f} us (user {user_us:.1f}, system {system_us:.1f}{over}; "
        "all the host process's work during the gateway run, over the events relayed)"
    )
    loads = [value for done in rounds for value in done.load]
    print(f"load average (1 min) at the gateway runs' starts and ends: {min(loads):.2f}-{max(loads):.2f}")
    served = statistics.median(done.served_cores for done in rounds)
    instance, host, client = (statistics.median(done.cores[i] for done in rounds) for i in range(3))
    print(f"CPU of the chute served directly, during the direct run: {served:.2f} cores")
    print(
        f"CPU during the gateway run, in cores: instance {instance:.2f}, host {host:.2f}, clients {client:.2f}; "
        f"total {instance + host + client:.2f} of {os.cpu_count()}"
    )


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


if __name__ == "__main__":
    main()
