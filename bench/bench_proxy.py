"""Benchmark of the streaming reverse proxy: a hello upstream called directly, through
chutes.proxy.Proxy, and through an httpx.AsyncClient proxy hop, with wrk.

    .venv/bin/python bench/bench_proxy.py [--duration 5] [--runs 2] [--connections 64]

Every server is uvicorn with uvloop and httptools, one worker, access log off, pinned with taskset.
This module is also the apps' module (`bench_proxy:hello_app`, ...), so it imports little at the top.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELLO = b"Hello, world!"
UPSTREAM_PORT = int(os.environ.get("BENCH_UPSTREAM_PORT", "0"))


async def hello_app(scope, receive, send) -> None:
    """The upstream: a bare ASGI hello world, and at /sse a stream of timestamped events."""
    if scope["path"] == "/sse":
        await stream_events(send)
        return
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": HELLO})


async def stream_events(send) -> None:
    """Sends SSE_EVENTS events 10 ms apart, each carrying the time it was sent (ns)."""
    import asyncio

    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    for _ in range(SSE_EVENTS):
        await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"data: %d\n\n" % time.time_ns(), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


SSE_EVENTS = 100
_proxy = None


async def chutes_proxy_app(scope, receive, send) -> None:
    """A hop through chutes.proxy.Proxy."""
    global _proxy
    if _proxy is None:
        from chutes.proxy import Proxy

        _proxy = Proxy()
    await _proxy.forward(scope, receive, send, host="127.0.0.1", port=UPSTREAM_PORT)


_client = None


async def httpx_proxy_app(scope, receive, send) -> None:
    """The same hop on httpx.AsyncClient, streaming the response back."""
    global _client
    if _client is None:
        import httpx

        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=256)
        _client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{UPSTREAM_PORT}", limits=limits)
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    url = scope["raw_path"].decode() + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
    headers = [(k, v) for k, v in scope["headers"] if k not in (b"host", b"connection", b"content-length")]
    request = _client.build_request(scope["method"], url, headers=headers, content=body)
    response = await _client.send(request, stream=True)
    try:
        out = [(k, v) for k, v in response.headers.raw if k.lower() not in (b"connection", b"transfer-encoding")]
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        await response.aclose()


_session = None


async def aiohttp_proxy_app(scope, receive, send) -> None:
    """The same hop on aiohttp's ClientSession (only with --aiohttp-python: not a project dependency)."""
    global _session
    if _session is None:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=1000)
        _session = aiohttp.ClientSession(
            f"http://127.0.0.1:{UPSTREAM_PORT}", connector=connector, auto_decompress=False
        )
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    url = scope["raw_path"].decode() + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
    headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k not in (b"host", b"connection")]
    async with _session.request(scope["method"], url, headers=headers, data=body) as response:
        skip = (b"connection", b"transfer-encoding")
        out = [(k.lower(), v) for k, v in response.raw_headers if k.lower() not in skip]
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    app: str, port: int, cpus: str, upstream_port: int = 0, python: str = sys.executable
) -> subprocess.Popen:
    """Starts `uvicorn bench_proxy:<app>` pinned to `cpus`, and waits until it accepts connections."""
    command = [
        "taskset", "-c", cpus, python, "-m", "uvicorn", f"bench_proxy:{app}",
        "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--workers", "1",
        "--no-access-log", "--lifespan", "off", "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_UPSTREAM_PORT": str(upstream_port)}
    process = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"Error: {app} exited with {process.returncode}") from None
            time.sleep(0.05)
    stop_server(process)
    raise SystemExit(f"Error: {app} did not start on port {port} within 15 s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def to_ms(text: str) -> float:
    """Takes a wrk duration ('812.00us', '1.20ms', '2.00s', '1.00m'), and returns milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        return float("nan")
    return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[match.group(2)]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Result:
    """One wrk run: requests/s, p50 and p99 in ms, CPU microseconds per request of each server,
    and failed requests (non-2xx, socket errors and wrk's 2 s timeouts)."""

    def __init__(self, rps: float, p50: float, p99: float, cpu_us: list[float], errors: int) -> None:
        self.rps, self.p50, self.p99, self.cpu_us, self.errors = rps, p50, p99, cpu_us, errors

    def __repr__(self) -> str:
        return f"Result(rps={self.rps:.0f}, p50={self.p50:.2f}, p99={self.p99:.2f}, cpu_us={self.cpu_us})"


def run_wrk(
    port: int, *, duration: int, connections: int, cpu: str, pids: list[int], extra: tuple[str, ...] = ()
) -> Result:
    """Runs wrk pinned to `cpu` against port (plus `extra` wrk arguments); measures CPU per request of `pids`."""
    command = [
        "taskset", "-c", cpu, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", *extra,
        f"http://127.0.0.1:{port}/",
    ]  # fmt: skip
    before = [cpu_seconds(pid) for pid in pids]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 30).stdout
    used = [cpu_seconds(pid) - start for pid, start in zip(pids, before, strict=True)]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    percentiles = [re.search(rf"^\s+{q}%\s+(\S+)", output, re.M) for q in (50, 99)]
    p50, p99 = (to_ms(match.group(1) if match else "") for match in percentiles)
    return Result(rps, p50, p99, [seconds * 1e6 / max(requests, 1) for seconds in used], errors)


def measure(port: int, args: argparse.Namespace, connections: int, wrk_cpu: str, pids: list[int]) -> Result:
    """Warms up, then returns the run with the median requests/s of `runs` wrk runs."""
    run_wrk(port, duration=1, connections=connections, cpu=wrk_cpu, pids=pids)
    runs = [
        run_wrk(port, duration=args.duration, connections=connections, cpu=wrk_cpu, pids=pids) for _ in range(args.runs)
    ]
    return sorted(runs, key=lambda run: run.rps)[(len(runs) - 1) // 2]


LAYOUTS = {
    # name: (proxy cpus, wrk cpus)
    "split": ("1", "1", "upstream:0 proxy:1 wrk:1"),
    "shared": ("0", "1", "upstream:0 proxy:0 wrk:1"),
    "float": ("0,1", "1", "upstream:0 proxy:0,1 wrk:1"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=2, help="wrk runs per case (the median one is shown)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections for throughput")
    parser.add_argument("--layouts", default="split,shared", help="comma-separated: split, shared, float")
    parser.add_argument("--no-httpx", action="store_true", help="skip the httpx.AsyncClient proxy")
    parser.add_argument(
        "--aiohttp-python",
        metavar="PYTHON",
        help="also measure an aiohttp proxy hop, served by this interpreter (needs aiohttp and uvicorn[standard])",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        raise SystemExit("Error: needs wrk and taskset; install them with: apt-get install -y wrk util-linux")
    layouts = [LAYOUTS[name] for name in args.layouts.split(",")]
    apps = [("chutes_proxy_app", "chutes Proxy", sys.executable)]
    if not args.no_httpx:
        apps.append(("httpx_proxy_app", "httpx proxy", sys.executable))
    if args.aiohttp_python:
        apps.append(("aiohttp_proxy_app", "aiohttp proxy", args.aiohttp_python))

    upstream_port = free_port()
    upstream = start_server("hello_app", upstream_port, "0")
    rows: list[tuple[str, str, int, Result]] = []
    sse_rows: list[tuple[str, list[float]]] = []
    try:
        sse_rows.append(("direct", measure_sse(upstream_port)))
        for connections in (args.connections, 1):
            result = measure(upstream_port, args, connections, "1", [upstream.pid])
            rows.append(("direct", "upstream:0 wrk:1", connections, result))
        for app, name, python in apps:
            for proxy_cpu, wrk_cpu, layout in layouts:
                port = free_port()
                proxy = start_server(app, port, proxy_cpu, upstream_port, python)
                try:
                    sse_rows.append((f"{name}, {layout}", measure_sse(port)))
                    counts = (args.connections, 1) if app == "chutes_proxy_app" else (args.connections,)
                    for connections in counts:
                        result = measure(port, args, connections, wrk_cpu, [upstream.pid, proxy.pid])
                        rows.append((name, layout, connections, result))
                finally:
                    stop_server(proxy)
    finally:
        stop_server(upstream)
    print_table(rows)
    print_sse(sse_rows)


def measure_sse(port: int) -> list[float]:
    """Reads the /sse stream over a raw socket; returns each event's delay from upstream to here (ms)."""
    delays = []
    buffer = b""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /sse HTTP/1.1\r\nhost: bench\r\n\r\n")
        while len(delays) < SSE_EVENTS:
            data = sock.recv(65536)
            if not data:
                raise SystemExit(f"Error: the /sse stream on port {port} ended after {len(delays)} events")
            now = time.time_ns()
            buffer += data
            for sent in re.findall(rb"data: (\d+)\n\n", buffer):
                delays.append((now - int(sent)) / 1e6)
            buffer = buffer[buffer.rfind(b"\n\n") + 2 :]
    return delays


def print_sse(rows: list[tuple[str, list[float]]]) -> None:
    print(f"\n{'SSE event delay (upstream send to client recv)':<48}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}")
    for name, delays in rows:
        delays = sorted(delays)
        p50, p99 = delays[len(delays) // 2], delays[int(len(delays) * 0.99) - 1]
        print(f"{name:<48}{p50:>8.2f}{p99:>8.2f}{delays[-1]:>8.2f}")


def print_table(rows: list[tuple[str, str, int, Result]]) -> None:
    direct = {conns: result for name, _, conns, result in rows if name == "direct"}
    print(
        f"\n{'case':<14}{'pinning':<26}{'conns':>6}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'ratio':>7}{'+p50 ms':>9}{'errors':>7}{'cpu us/req (upstream, proxy)':>30}"
    )
    for name, layout, conns, result in rows:
        base = direct[conns]
        cpu = ", ".join(f"{us:.0f}" for us in result.cpu_us)
        print(
            f"{name:<14}{layout:<26}{conns:>6}{result.rps:>9.0f}{result.p50:>8.2f}{result.p99:>8.2f}"
            f"{result.rps / base.rps:>7.2f}{result.p50 - base.p50:>+9.2f}{result.errors:>7}{cpu:>30}"
        )


if __name__ == "__main__":
    main()
