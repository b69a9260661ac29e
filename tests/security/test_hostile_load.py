"""Fifty hostile and ordinary clients at once against a real host with a chute: slow heads and bodies,
huge declared and streamed bodies, form floods, job uploads and tar bombs. The host's memory stays
bounded, ordinary calls keep being answered quickly, and nothing is left on disk."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.host.bundles import header_bomb, hello_bundle
from tests.host.conftest import Host, make_project, wait_for

MiB = 1 << 20
LOAD_SECONDS = 20.0
MAX_GROWTH_MB = 150
MAX_P99_SECONDS = 1.0
QUIET_CORES = 0.5  # busy cores before the load under which the machine counts as the host's own
BUSY_P99_SECONDS = 5.0
BOUNDARY = b"b0undary"
ORDINARY = ("chute", "chutes list", "jobs list")
PLAN = {"slow head": 8, "slow body": 8, "huge declared": 6, "huge streamed": 6, "form flood": 6, "tar bomb": 2}
HOSTILE_PAUSE = 0.1  # each hostile connection's next attempt follows its last answer after this


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("load")
    (base / "tmp").mkdir()
    host = Host(
        data_dir=base / "data",
        home=base / "home",
        port=free_port(),
        extra_args=["--max-bundle-mb", "8"],
        env={"TMPDIR": str(base / "tmp")},  # whatever the host spools outside its data dir lands here
    )
    host.tmp = base / "tmp"
    host.home.mkdir()
    host.start()
    host.alice = host.add_user("alice")
    project = make_project(base / "project", "host_jobs.py")
    deployed = host.cli("deploy", "host_jobs:chute", key=host.alice, cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    hello = host.api("POST", "/chutes", key=host.alice, params={"public": "true"}, content=hello_bundle(base / "h.tgz"))
    assert hello.status_code == 202, hello.text
    wait_for(lambda: ping(host) == 200, timeout=60, what="the chutes to answer", host=host)
    header_bomb(base / "bomb.tgz", payload_mib=1024)  # ~1 MiB of gzip; a 1 GiB long-name header inflated
    host.bomb = (base / "bomb.tgz").read_bytes()
    yield host
    host.stop()


def ping(host: Host) -> int:
    """Calls both chutes; returns the worse status."""
    jobs = host.call("alice-jobs", "/ping", key=host.alice, json={}, timeout=10).status_code
    return max(jobs, host.call("alice-hello", "/hello", json={"name": "x"}, timeout=10).status_code)


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def leftovers(host: Host) -> list[str]:
    """Returns what the host left in its temporary places: its own tmp dir, TMPDIR, and job directories."""
    found = []
    for folder in (host.data_dir / "tmp", host.tmp, host.data_dir / "jobs"):
        if folder.exists():
            found += [str(p) for p in folder.iterdir()]
    return found


# --- the clients ----------------------------------------------------------------------------------


async def exchange(port: int, head: bytes, parts: AsyncIterator[bytes] | None = None, *, timeout: float = 15) -> int:
    """Sends a request head, then body parts until the host answers; returns the answer's status (0 when the
    host closed the connection without one)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        answer = asyncio.create_task(reader.readline())
        writer.write(head)
        if parts is not None:
            with contextlib.suppress(ConnectionError):
                async for part in parts:
                    if answer.done():
                        break
                    writer.write(part)
                    await writer.drain()
        async with asyncio.timeout(timeout):
            line = await answer
        return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else 0
    except (ConnectionError, TimeoutError):
        return 0
    finally:
        writer.close()


async def junk(total: int, chunk: int = 256 * 1024, *, every: float = 0.0) -> AsyncIterator[bytes]:
    for _ in range(0, total, chunk):
        yield b"x" * chunk
        await asyncio.sleep(every)


def head(method: str, path: str, *, key: str | None = None, host: str = "localhost", **headers: str | int) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}"]
    if key:
        lines.append(f"authorization: Bearer {key}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def multipart_files(count: int, size: int) -> bytes:
    parts = [
        b'--%s\r\ncontent-disposition: form-data; name="f%d"; filename="f%d.bin"\r\n\r\n%s\r\n'
        % (BOUNDARY, i, i, b"x" * size)
        for i in range(count)
    ]
    return b"".join(parts) + b"--%s--\r\n" % BOUNDARY


async def upload_parts(total: int) -> AsyncIterator[bytes]:
    """One file part of `total` bytes, as chunked-transfer frames (no Content-Length to refuse it early)."""
    yield b"%x\r\n%s\r\n" % (
        len(start := b'--%s\r\ncontent-disposition: form-data; name="big"; filename="big.bin"\r\n\r\n' % BOUNDARY),
        start,
    )
    async for part in junk(total):
        yield b"%x\r\n%s\r\n" % (len(part), part)


MULTIPART = f"multipart/form-data; boundary={BOUNDARY.decode()}"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Target:
    """What the hostile clients, in a process of their own, need to know of the host."""

    port: int
    key: str
    bomb: bytes


def hostile_requests(host: Target) -> dict[str, list]:
    """Returns, by kind, the requests hostile clients make: (head, body parts factory or None, expected statuses)."""
    key = host.key
    gateway = "alice-hello.localhost"
    flood = "&".join(f"f{i}=x" for i in range(900)).encode()
    many_files = multipart_files(300, 10)
    return {
        "slow head": [(b"POST /dashboard/sign-in HTTP/1.1\r\nhost: localhost\r\n", None, {408, 0})],
        "slow body": [
            (
                head("POST", "/dashboard/sign-in", content_type=FORM, content_length=10_000),
                lambda: junk(10_000, 1, every=0.5),
                {0, 408},
            ),
            (
                head("POST", "/api/v1/chutes/jobs/scale", key=key, content_length=10_000),
                lambda: junk(10_000, 1, every=0.5),
                {0, 408},
            ),
        ],
        "huge declared": [
            (head("POST", "/dashboard/api/chutes/jobs/scale", content_length=300 * MiB), None, {401}),
            (head("POST", "/api/v1/chutes/jobs/scale", content_length=300 * MiB), None, {401}),
            (head("POST", "/dashboard/try/alice-jobs/ping", content_length=300 * MiB), None, {401}),
            (head("POST", "/dashboard/sign-in", content_type=FORM, content_length=300 * MiB), None, {413}),
            (head("POST", "/api/v1/chutes", key=key, content_length=300 * MiB), None, {413}),
        ],
        "huge streamed": [
            (
                head("POST", "/api/v1/chutes/jobs/scale", key=key, transfer_encoding="chunked"),
                lambda: chunked(junk(64 * MiB)),
                {413, 0},
            ),
            (
                head("POST", "/api/v1/chutes", key=key, transfer_encoding="chunked"),
                lambda: chunked(junk(64 * MiB)),
                {413, 0},
            ),
            (
                head(
                    "POST",
                    "/api/v1/chutes/jobs/jobs/squares",
                    key=key,
                    transfer_encoding="chunked",
                    content_type=MULTIPART,
                ),
                lambda: upload_parts(64 * MiB),
                {413, 0},
            ),
            (
                head("POST", "/hello", host=gateway, content_type="application/json", content_length=64 * MiB),
                lambda: junk(64 * MiB),
                {413, 422, 0},
            ),
        ],
        "form flood": [
            (
                head(
                    "POST",
                    "/dashboard/sign-in",
                    content_type=FORM,
                    content_length=len(flood),
                ),
                lambda: once(flood),
                {400},
            ),
            (
                head("POST", "/dashboard/sign-out", content_type=MULTIPART, content_length=len(many_files)),
                lambda: once(many_files),
                {413},  # over the form's 16 KiB before its first file counts
            ),
            (
                head(
                    "POST",
                    "/api/v1/chutes/jobs/jobs/squares",
                    key=key,
                    content_type=MULTIPART,
                    content_length=len(many_files),
                ),
                lambda: once(many_files),
                {400},
            ),
        ],
        "tar bomb": [
            (
                head("POST", "/api/v1/chutes", key=key, content_type="application/gzip", content_length=len(host.bomb)),
                lambda: once(host.bomb),
                {400, 413},
            )
        ],
    }


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def chunked(parts: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for part in parts:
        yield b"%x\r\n%s\r\n" % (len(part), part)
    yield b"0\r\n\r\n"


async def hostile_client(
    host: Target, requests: list, stop: asyncio.Event, seen: collections.Counter, kind: str
) -> None:
    i = 0
    while not stop.is_set():
        request_head, parts, expected = requests[i % len(requests)]
        i += 1
        if kind == "slow head":  # a byte of the head every half second
            status = await exchange(host.port, b"", slow_head(request_head, stop), timeout=30)
        else:
            status = await exchange(host.port, request_head, parts() if parts else None, timeout=30)
        seen[(kind, status in expected)] += 1
        if status not in expected:
            seen[(kind, f"unexpected {status}")] += 1
        await asyncio.sleep(HOSTILE_PAUSE)


def run_hostile_clients(target: Target, plan: dict[str, int], seconds: float, results: Any) -> None:
    """Runs plan[kind] clients of each kind for `seconds` (in a process of their own, so that their
    work does not slow the measured clients down), and puts what they were answered on `results`."""

    async def main() -> collections.Counter:
        requests = hostile_requests(target)
        stop = asyncio.Event()
        seen: collections.Counter = collections.Counter()
        clients = [
            asyncio.create_task(hostile_client(target, requests[kind], stop, seen, kind))
            for kind, count in plan.items()
            for _ in range(count)
        ]
        await asyncio.sleep(seconds)
        stop.set()
        async with asyncio.timeout(60):
            await asyncio.gather(*clients)
        return seen

    results.put(dict(asyncio.run(main())))


async def slow_head(data: bytes, stop: asyncio.Event) -> AsyncIterator[bytes]:
    for byte in data:
        if stop.is_set():
            return
        yield bytes([byte])
        await asyncio.sleep(0.5)


async def ordinary_client(host: Host, stop: asyncio.Event, latencies: dict, failures: list[str], n: int) -> None:
    """Calls a chute, the control API and the job API in turn, as a well-behaved user does; records each
    call's time under latencies[ORDINARY[i]]."""
    async with httpx.AsyncClient(base_url=host.url, timeout=30) as client:
        auth = {"Authorization": f"Bearer {host.alice}"}
        calls = [
            lambda: client.post("/hello", json={"name": "o"}, headers={"Host": f"alice-hello.localhost:{host.port}"}),
            lambda: client.get("/api/v1/chutes", headers=auth),
            lambda: client.get("/api/v1/chutes/jobs", headers=auth),
        ]
        i = n
        while not stop.is_set():
            started = time.monotonic()
            try:
                answer = await calls[i % len(calls)]()
                ok = answer.status_code == 200
                why = f"{answer.status_code} {answer.text[:200]}"
            except httpx.HTTPError as exc:
                ok, why = False, repr(exc)
            latencies[ORDINARY[i % len(calls)]].append(time.monotonic() - started)
            if not ok:
                failures.append(why)
            i += 1
            await asyncio.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """Returns the CPU time a process has used so far (user and system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """Returns (busy, total) CPU time of the whole machine so far, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


class MemoryWatch:
    """Samples a process's resident memory every 0.1 s in a thread, and keeps the largest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.peak_kb = max(self.peak_kb, memory_kb(self.pid, "VmRSS"))

    def __enter__(self) -> MemoryWatch:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.done.set()
        self.thread.join()


# --- the tests -------------------------------------------------------------------------------------


async def test_a_job_upload_is_counted_as_it_arrives(host: Host) -> None:
    """A streamed upload (no Content-Length) over the 8 MiB limit is refused once it passes it, not after
    the host has taken it all, and leaves nothing behind."""
    sent = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal sent
        async for part in upload_parts(256 * MiB):
            sent += len(part)
            yield part

    request = head(
        "POST", "/api/v1/chutes/jobs/jobs/squares", key=host.alice, transfer_encoding="chunked", content_type=MULTIPART
    )
    status = await exchange(host.port, request, counted(), timeout=60)
    assert status == 413
    assert sent < 64 * MiB, f"the host took {sent / MiB:.0f} MiB before refusing"
    wait_for(lambda: not leftovers(host), timeout=10, what="the refused upload's files to be gone", host=host)


async def test_fifty_hostile_and_ordinary_clients_at_once(host: Host) -> None:
    pid = host.proc.pid
    for _ in range(20):  # warm: the first calls import and cache what later ones use
        assert await asyncio.to_thread(ping, host) == 200
    idle_kb = memory_kb(pid, "VmRSS")
    before = machine_busy()
    await asyncio.sleep(2.0)
    after = machine_busy()
    background = (after[0] - before[0]) / (after[1] - before[1]) * os.cpu_count()  # other work on the machine
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM from here on
    ordinary = 50 - sum(PLAN.values())
    stop = asyncio.Event()
    latencies: dict[str, list[float]] = {call: [] for call in ORDINARY}
    failures: list[str] = []
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    hostile = spawn.Process(
        target=run_hostile_clients, args=(Target(host.port, host.alice, host.bomb), PLAN, LOAD_SECONDS, results)
    )
    cpu_before, loop_started, busy_before = cpu_seconds(pid), time.monotonic(), machine_busy()
    with MemoryWatch(pid) as watch:
        hostile.start()
        await asyncio.sleep(1.0)  # the hostile clients are under way
        clients = [asyncio.create_task(ordinary_client(host, stop, latencies, failures, n)) for n in range(ordinary)]
        await asyncio.sleep(LOAD_SECONDS - 1.0)
        stop.set()
        async with asyncio.timeout(60):
            await asyncio.gather(*clients)
            seen = collections.Counter(await asyncio.to_thread(results.get, timeout=60))
        hostile.join(10)
    peak_kb = max(watch.peak_kb, memory_kb(pid, "VmHWM"))
    host_cpu = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - loop_started)
    busy_after = machine_busy()
    machine = (busy_after[0] - busy_before[0]) / (busy_after[1] - busy_before[1]) * os.cpu_count()
    every = sorted(t for times in latencies.values() for t in times)
    p99 = percentile(every, 0.99)
    report = (
        f"host memory idle {idle_kb / 1024:.0f} MB, peak {peak_kb / 1024:.0f} MB "
        f"(+{(peak_kb - idle_kb) / 1024:.0f} MB); "
        f"{len(every)} ordinary calls, p50 {percentile(every, 0.5) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {every[-1] * 1000:.0f} ms ("
        + ", ".join(f"{call}: p50 {percentile(sorted(t), 0.5) * 1000:.0f} ms" for call, t in latencies.items())
        + f"); host CPU {host_cpu:.2f} cores, machine {machine:.2f} of {os.cpu_count()} cores busy "
        f"({background:.2f} before the load); hostile answers {dict(seen)}"
    )
    print(report)
    assert not failures, f"{len(failures)} ordinary calls failed, e.g. {failures[:3]}; {report}"
    assert not [k for k in seen if isinstance(k[1], str)], report
    assert all(seen[(kind, True)] for kind in PLAN), report  # each kind was answered as expected at least once
    assert (peak_kb - idle_kb) / 1024 < MAX_GROWTH_MB, report
    # the bound is for a machine the host has to itself; where other work already held it, the
    # figure is still reported, and only a stall (not a slowdown shared with that work) fails
    assert p99 < (MAX_P99_SECONDS if background < QUIET_CORES else BUSY_P99_SECONDS), report
    assert await asyncio.to_thread(ping, host) == 200
    wait_for(lambda: not leftovers(host), timeout=30, what=f"no temporary files left: {leftovers(host)}", host=host)
