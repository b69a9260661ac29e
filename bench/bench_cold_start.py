"""Cold start from zero against warm, in one run: the example chute on the process executor.

    .venv/bin/python bench/bench_cold_start.py [--rounds 5] [--warm-calls 20] [--sandbox auto]

It starts a real `chutes host serve` (process executor, sandboxed when bubblewrap can be used) on a
temporary data dir, deploys `examples/hello/hello.py` with `shutdown_after_seconds=1`, and for each
round: calls `/hello` through the gateway while the instance is warm (time to first byte, median of
--warm-calls), waits until the host has scaled the chute to zero (phase `cold`), then times the one
call that wakes it, from sending the request to the first byte of the answer. "Added" is the cold
call minus the warm median of the same round. The host's own figure (instance start to first ready
answer) comes from its /_metrics.

Goal (issue 10): a cold start adds under 1.5 s to the first byte.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_gateway import host_with_user, wait_until  # noqa: E402

CHUTES = str(Path(sys.executable).with_name("chutes"))
RESULTS = HERE / "results"
METRICS_KEY = "bench-metrics"


class ColdHost:
    """A host on a temp data dir with the example chute deployed, scaled to zero after a second idle."""

    def __init__(self, root: Path, *, sandbox: str) -> None:
        self.root = root
        self.port, self.url, self.env, self.key = host_with_user(root, "myuser")
        command = [CHUTES, "host", "serve", "--port", str(self.port), "--data-dir", str(root / "data")]
        command += ["--sandbox", sandbox, "--metrics-key", METRICS_KEY, "--log-level", "warning"]
        self.log = open(root / "host.log", "wb")
        self.host = subprocess.Popen(command, env=self.env, stderr=self.log)
        wait_until(lambda: _status(f"{self.url}/api/v1/openapi.json") == 200, 30, "the host to start")
        self.headers = {"Host": f"myuser-hello.localhost:{self.port}", "X-API-Key": self.key}

    def deploy_example(self) -> None:
        project = self.root / "project"
        project.mkdir()
        source = (ROOT / "examples" / "hello" / "hello.py").read_text()
        marked = source.replace("concurrency=64,", "concurrency=64,\n    shutdown_after_seconds=1,")
        if marked == source:
            raise SystemExit("Error: examples/hello/hello.py no longer says `concurrency=64,`; update this bench")
        (project / "hello.py").write_text(marked)
        done = subprocess.run(
            [CHUTES, "deploy", "hello:chute"], cwd=project, env=self.env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"Error: deploy failed: {done.stderr}")

    def phase(self) -> str:
        return httpx.get(f"{self.url}/api/v1/chutes/hello", headers={"X-API-Key": self.key}, timeout=10).json()["phase"]

    def first_byte(self, client: httpx.Client) -> float:
        """Returns seconds from sending POST /hello through the gateway to the first byte of a 200 answer."""
        started = time.perf_counter()
        with client.stream("POST", self.url + "/hello", json={"name": "bench"}, headers=self.headers) as resp:
            next(resp.iter_raw())
            elapsed = time.perf_counter() - started
            if resp.status_code != 200:
                raise SystemExit(f"Error: the call answered {resp.status_code}: {resp.read().decode()}")
        return elapsed

    def host_cold_starts(self) -> tuple[int, float]:
        text = httpx.get(f"{self.url}/_metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}).text
        values = {}
        for line in text.splitlines():
            if line.startswith("chutes_chute_cold_start_seconds_") and 'chute="myuser-hello"' in line:
                values[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
        return int(values["chutes_chute_cold_start_seconds_count"]), values["chutes_chute_cold_start_seconds_sum"]

    def close(self) -> None:
        self.host.terminate()
        try:
            self.host.wait(20)
        except subprocess.TimeoutExpired:
            self.host.kill()
        self.log.close()


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warm-calls", type=int, default=20)
    parser.add_argument("--sandbox", choices=["auto", "bwrap", "off"], default="auto")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        bench = ColdHost(Path(tmp), sandbox=args.sandbox)
        try:
            bench.deploy_example()
            with httpx.Client(timeout=120, trust_env=False) as client:
                for n in range(args.rounds):
                    if bench.phase() == "cold":
                        bench.first_byte(client)  # wake it, so the warm figures are of a warm instance
                    warm = statistics.median(bench.first_byte(client) for _ in range(args.warm_calls))
                    wait_until(lambda: bench.phase() == "cold", 60, "the chute to scale to zero")
                    before = bench.host_cold_starts()
                    cold = bench.first_byte(client)
                    after = bench.host_cold_starts()
                    start_to_ready = (after[1] - before[1]) / max(1, after[0] - before[0])
                    rows.append({"round": n + 1, "warm_s": warm, "cold_s": cold, "start_to_ready_s": start_to_ready})
                    print(
                        f"round {n + 1}: warm {warm * 1000:.1f} ms, cold {cold * 1000:.0f} ms, "
                        f"added {(cold - warm) * 1000:.0f} ms "
                        f"(host: instance start to ready {start_to_ready * 1000:.0f} ms)"
                    )
        finally:
            bench.close()
    added = [r["cold_s"] - r["warm_s"] for r in rows]
    warm = statistics.median(r["warm_s"] for r in rows) * 1000
    cold = statistics.median(r["cold_s"] for r in rows) * 1000
    print(
        f"\nmedian over {len(rows)} rounds: warm {warm:.1f} ms, cold {cold:.0f} ms, "
        f"added {statistics.median(added) * 1000:.0f} ms (max {max(added) * 1000:.0f} ms); goal: added < 1500 ms"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cold_start.json").write_text(json.dumps({"sandbox": args.sandbox, "rounds": rows}, indent=2))


if __name__ == "__main__":
    main()
