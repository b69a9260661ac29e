"""Benchmark of the host's gateway: a deployed chute called directly and through the gateway, in one run.

    .venv/bin/python bench/bench_gateway.py [--duration 5] [--runs 2] [--connections 64] [--deploys 3]
                                            [--sandbox auto|bwrap|off] [--no-direct-gateway]

It starts a real `chutes host serve` (process executor, sandboxed when bubblewrap can be used; pass
--sandbox off to compare) on a temporary data dir, adds a user, and measures: the time from
`chutes deploy` to the first successful call through the gateway (median of --deploys fresh
deploys); requests/s and p50/p99 with wrk (one thread) against the same chute served directly by
`python -m chutes.serve` on a port of its own, and through the gateway's `Host: {slug}.localhost`
route to the host's instance (which listens on a Unix socket only the host reaches), for a public
and a private chute; and how long after the instance produced it each SSE event reaches a client,
directly and through the gateway. Pinning: instances on core 0, gateway and wrk on core 1.

Goals (issues 5 and 9): the gateway keeps >= 0.6x of direct throughput (0.5x before the sandbox), adds
< 1 ms at p50 with one client, forwards each SSE event within 5 ms; deploy-to-first-call < 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_proxy import Result, run_wrk  # noqa: E402

CHUTES = str(Path(sys.executable).with_name("chutes"))
CHUTE_SOURCE = """
import asyncio
import time

from chutes.chute import Chute, NodeSelector

chute = Chute(
    username="bench", name="NAME", image="bench/hello", concurrency=4096, node_selector=NodeSelector(gpu_count=0)
)


@chute.cord(public_api_path="/", method="GET")
async def hello(self) -> dict:
    return {"message": "Hello, world!"}


@chute.cord(public_api_path="/ticks", stream=True)
async def ticks(self, count: int = 100, interval: float = 0.01, lockstep: bool = False):
    for i in range(count):
        # lockstep: at the next multiple of interval, the same instant for every stream (a batched decode step)
        await asyncio.sleep(interval - time.time() % interval if lockstep else interval)
        yield {"i": i, "t": time.time()}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def host_with_user(root: Path, user: str) -> tuple[int, str, dict[str, str], str]:
    """Adds `user` to a host data dir under `root`; returns the port and URL the host will serve on, the
    environment the CLI runs with (its own HOME, pointed at that host with the user's key), and the key."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTES_")}
    env["HOME"] = str(root)
    added = subprocess.run(
        [CHUTES, "host", "users", "add", user, "--data-dir", str(root / "data")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = added.stdout.strip()
    env.update(CHUTES_API_URL=url, CHUTES_API_KEY=key)
    return port, url, env, key


class Bench:
    """A host on a temp data dir, with one user, and the chutes deployed on it."""

    def __init__(
        self, root: Path, *, sandbox: str, direct_gateway: bool = True, host_args: tuple[str, ...] = ()
    ) -> None:
        self.root = root
        self.port, self.url, self.env, self.key = host_with_user(root, "bench")
        command = [
            "taskset",
            "-c",
            "1",
            CHUTES,
            "host",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(root / "data"),
            "--log-level",
            "warning",
            "--sandbox",
            sandbox,
            "--direct-gateway" if direct_gateway else "--no-direct-gateway",
            *host_args,
        ]
        self.host = subprocess.Popen(command, env=self.env, stderr=open(root / "host.log", "wb"))
        self.direct: list[subprocess.Popen] = []
        wait_until(lambda: _answers(f"{self.url}/api/v1/openapi.json"), 30, "the host to start")

    def deploy(self, name: str, *, public: bool) -> float:
        """Deploys a fresh chute and returns seconds from `chutes deploy` to its first 200 via the gateway."""
        project = self.root / name
        project.mkdir()
        (project / "bench_chute.py").write_text(CHUTE_SOURCE.replace("NAME", name))
        started = time.perf_counter()
        flag = "--public" if public else "--private"
        proc = subprocess.Popen(
            [CHUTES, "deploy", "bench_chute:chute", flag, "--no-wait"],
            cwd=project,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        headers = {"Host": f"bench-{name}.localhost:{self.port}", "X-API-Key": self.key}
        wait_until(lambda: _answers(self.url + "/", headers=headers), 60, f"the first call to {name}")
        elapsed = time.perf_counter() - started
        if proc.wait(30) != 0:
            raise SystemExit(f"Error: deploy failed: {proc.stderr.read().decode()}")
        return elapsed

    def instance_pid(self, name: str) -> int:
        """Returns the host's pid of the chute's instance (the sandboxed process itself)."""
        chute = httpx.get(f"{self.url}/api/v1/chutes/{name}", headers={"X-API-Key": self.key}).json()
        return chute["instances"][0]["pid"]

    def serve_directly(self, name: str) -> tuple[subprocess.Popen, int]:
        """Serves the chute's code with `python -m chutes.serve` on its own port, on core 0; returns it and the port."""
        port = free_port()
        proc = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "chutes.serve", "bench_chute:chute"]
            + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=self.root / name,
            env=self.env,
        )
        self.direct.append(proc)
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/_ready"), 30, f"{name} served directly")
        return proc, port

    def close(self) -> None:
        for proc in self.direct:
            proc.terminate()
            proc.wait(20)
        self.host.terminate()
        try:
            self.host.wait(20)
        except subprocess.TimeoutExpired:
            self.host.kill()


def _answers(url: str, headers: dict | None = None) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise SystemExit(f"Error: timed out after {timeout} s waiting for {what}")


def wrk_with_host(
    port: int, host_header: str | None, key: str | None, *, duration: int, connections: int, pids: list[int], runs: int
) -> Result:
    """Runs wrk against port (with Host/X-API-Key headers when given); returns the median-req/s run."""
    extra = []
    if host_header:
        extra += ["-H", f"Host: {host_header}"]
    if key:
        extra += ["-H", f"X-API-Key: {key}"]
    run_wrk(port, duration=1, connections=connections, cpu="1", pids=pids, extra=tuple(extra))
    results = [
        run_wrk(port, duration=duration, connections=connections, cpu="1", pids=pids, extra=tuple(extra))
        for _ in range(runs)
    ]
    return sorted(results, key=lambda r: r.rps)[(len(results) - 1) // 2]


def sse_delays(url: str, headers: dict[str, str]) -> list[float]:
    """Returns, for each SSE event, milliseconds between its production and its arrival here."""
    delays = []
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", url + "/ticks", json={"count": 100, "interval": 0.01}, headers=headers) as resp:
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    delays.append((time.time() - json.loads(line[6:])["t"]) * 1000)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=2, help="wrk runs per case (the median one is shown)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections for throughput")
    parser.add_argument("--deploys", type=int, default=3, help="fresh deploys timed for deploy-to-first-call")
    parser.add_argument("--sandbox", choices=("auto", "bwrap", "off"), default="auto", help="the host's --sandbox")
    parser.add_argument(
        "--no-direct-gateway",
        action="store_true",
        help="start the host with --no-direct-gateway (the ASGI gateway only)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        raise SystemExit("Error: needs wrk and taskset; install them with: apt-get install -y wrk util-linux")
    root = Path(tempfile.mkdtemp(prefix="chutes-bench-gateway-"))
    bench = Bench(root, sandbox=args.sandbox, direct_gateway=not args.no_direct_gateway)
    try:
        deploy_times = [bench.deploy(f"d{i}", public=True) for i in range(args.deploys)]
        bench.deploy("pub", public=True)
        bench.deploy("priv", public=False)
        rows = []
        for name, key in (("pub", None), ("priv", bench.key)):
            pid = bench.instance_pid(name)
            subprocess.run(["taskset", "-pc", "0", str(pid)], check=True, capture_output=True)
            served, port = bench.serve_directly(name)
            for conns in (args.connections, 1):
                direct = wrk_with_host(
                    port, None, None, duration=args.duration, connections=conns, pids=[served.pid], runs=args.runs
                )
                via = wrk_with_host(
                    bench.port,
                    f"bench-{name}.localhost:{bench.port}",
                    key,
                    duration=args.duration,
                    connections=conns,
                    pids=[pid, bench.host.pid],
                    runs=args.runs,
                )
                rows.append((name, conns, direct, via))
        _, port = bench.serve_directly("pub")
        direct_url, via_url = f"http://127.0.0.1:{port}", bench.url
        via_headers = {"Host": f"bench-pub.localhost:{bench.port}"}
        for url, headers in ((direct_url, {}), (via_url, via_headers)):
            sse_delays(url, headers)  # warm-up: a chute's first stream pays one-time costs
        sse_direct, sse_via = [], []
        for _ in range(3):
            sse_direct += sse_delays(direct_url, {})
            sse_via += sse_delays(via_url, via_headers)
    finally:
        bench.close()
        unsandboxed = "WITHOUT a sandbox" in (root / "host.log").read_text(errors="replace")
        shutil.rmtree(root, ignore_errors=True)
    isolation = "NOT sandboxed" if unsandboxed else "sandboxed by bubblewrap"
    gateway = "ASGI gateway only (--no-direct-gateway)" if args.no_direct_gateway else "direct path on"
    print(f"\nhost instances: {isolation} (--sandbox {args.sandbox}); {gateway}")
    report(deploy_times, rows, sse_direct, sse_via)


def report(deploy_times: list[float], rows: list, sse_direct: list[float], sse_via: list[float]) -> None:
    print(
        f"\ndeploy-to-first-call (process executor, {len(deploy_times)} fresh deploys): "
        f"median {statistics.median(deploy_times):.2f} s, max {max(deploy_times):.2f} s "
        f"(goal < 10 s: {'met' if max(deploy_times) < 10 else 'MISSED'})"
    )
    head = f"\n{'chute':<7}{'conns':>6}{'direct req/s':>14}{'gateway req/s':>15}{'ratio':>7}"
    print(head + f"{'direct p50/p99 ms':>19}{'gateway p50/p99 ms':>20}{'+p50 ms':>9}{'errors':>8}{'gw cpu us/req':>15}")
    for name, conns, direct, via in rows:
        print(
            f"{name:<7}{conns:>6}{direct.rps:>14.0f}{via.rps:>15.0f}{via.rps / direct.rps:>7.2f}"
            f"{f'{direct.p50:.2f}/{direct.p99:.2f}':>19}{f'{via.p50:.2f}/{via.p99:.2f}':>20}"
            f"{via.p50 - direct.p50:>+9.2f}{direct.errors + via.errors:>8}{via.cpu_us[1]:>15.0f}"
        )
    d99, v99 = (statistics.quantiles(x, n=100)[98] for x in (sse_direct, sse_via))
    print(
        f"\nSSE, 3 x 100 events 10 ms apart, production-to-arrival: direct p50 {statistics.median(sse_direct):.2f} ms "
        f"p99 {d99:.2f} ms max {max(sse_direct):.2f} ms; via gateway p50 {statistics.median(sse_via):.2f} ms "
        f"p99 {v99:.2f} ms max {max(sse_via):.2f} ms (goal every event < 5 ms: {_verdict(max(sse_via) < 5)})"
    )
    for name, conns, direct, via in rows:
        if conns > 1:
            ratio = via.rps / direct.rps
            print(f"{name}: throughput ratio {ratio:.2f} (goal >= 0.6: {'met' if ratio >= 0.6 else 'MISSED'})")
        else:
            extra = via.p50 - direct.p50
            print(f"{name}: added p50 with 1 client {extra:.2f} ms (goal < 1 ms: {'met' if extra < 1 else 'MISSED'})")


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


if __name__ == "__main__":
    main()
