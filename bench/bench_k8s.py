"""Benchmark of the kubernetes executor on the two-node test cluster (tests/k8s/cluster.py), in one run:

    .venv/bin/python bench/bench_k8s.py [--deploys 3] [--duration 5] [--runs 2] [--connections 32]

Needs root, the binaries of `bash .ci/k8s.sh` (CHUTES_K8S_BIN) and the engine of `bash .ci/engine.sh`
(DOCKER_HOST), which builds the test chute's image; the image is loaded into both nodes before anything is
timed, so deploy-to-ready is the host's and Kubernetes' own time (apply, schedule, start the container, pass
the readiness probe, the watch reporting it). Then wrk (one thread) measures requests/s and p50/p99 of a GET
cord through the gateway (`Host: {slug}.localhost`, the host in the root namespace routing to the pod's IP)
and against the same pod directly, one after the other. Pinning, as in bench_gateway.py: the pod's
containers on core 0, the host and wrk on core 1.

Goals (issue 12): deploy-to-ready < 30 s; the gateway keeps >= 0.5x of direct throughput.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.k8s.cluster import Cluster, Node, free_port  # noqa: E402
from tests.k8s.conftest import HOST_USER_BINDINGS, RBAC, TEST_IMAGE, build_test_image  # noqa: E402

CHUTES = str(Path(sys.executable).with_name("chutes"))
SLUG = "alice-k8s-hello"


def wrk(url: str, *, host: str | None, duration: int, connections: int) -> tuple[float, float, float, int]:
    """Runs wrk against url; returns requests/s, p50 and p99 in ms, and errors."""
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    if host:
        command += ["-H", f"Host: {host}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True, timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50, p99 = (_ms(re.search(rf"^\s+{q}%\s+(\S+)", output, re.M).group(1)) for q in (50, 99))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return rps, p50, p99, errors


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deploys", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    binaries = os.environ.get("CHUTES_K8S_BIN")
    if not binaries or "DOCKER_HOST" not in os.environ:
        raise SystemExit("Error: export what `bash .ci/k8s.sh` and `bash .ci/engine.sh` print first")
    work = Path(tempfile.mkdtemp(prefix="bench-k8s-"))
    build_test_image(work, "k8s_hello", TEST_IMAGE)
    cache = Path(os.environ.get("CHUTES_CI_CACHE") or Path.home() / ".cache" / "chutes-ci") / "k8s-nodes"
    cluster = Cluster(Path(binaries), work / "cluster", cache, [Node("n1", 1, gpus=1), Node("n2", 2, gpus=2)])
    started = time.perf_counter()
    cluster.start([TEST_IMAGE], engine_host=os.environ["DOCKER_HOST"])
    cluster_seconds = time.perf_counter() - started
    host = None
    try:
        cluster.api.kubectl("apply", "-f", str(RBAC))
        cluster.api.kubectl("apply", "-f", "-", input=HOST_USER_BINDINGS)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTES_")}
        env["HOME"] = str(work)
        data = str(work / "data")
        key = subprocess.run(
            [CHUTES, "host", "users", "add", "alice", "--data-dir", data], env=env, capture_output=True, text=True
        ).stdout.strip()
        env.update(CHUTES_API_URL=f"http://127.0.0.1:{port}", CHUTES_API_KEY=key)
        host = subprocess.Popen(
            ["taskset", "-c", "1", CHUTES, "host", "serve", "--port", str(port), "--data-dir", data,
             "--log-level", "warning", "--executor", "kubernetes", "--kubeconfig", str(cluster.api.kubeconfig("host")),
             "--pod-cpu", "50m", "--pod-memory", "256Mi"],
            env=env, stderr=open(work / "host.log", "wb"),
        )  # fmt: skip
        _wait(lambda: _answers(f"http://127.0.0.1:{port}/api/v1/limits"), 30)
        project = work / "project"
        project.mkdir()
        (project / "k8s_hello.py").write_text((ROOT / "tests/fixtures/chutes/k8s_hello.py").read_text())
        deploys = []
        for _ in range(args.deploys):
            subprocess.run([CHUTES, "chutes", "delete", "k8s-hello", "--yes"], env=env, capture_output=True)
            _wait(lambda: not _pods(cluster), 120)
            started = time.perf_counter()
            subprocess.run(
                [CHUTES, "deploy", "k8s_hello:chute", "--image", TEST_IMAGE, "--public"],
                cwd=project, env=env, check=True, capture_output=True, timeout=300,
            )  # fmt: skip
            deploys.append(time.perf_counter() - started)
        chute = httpx.get(f"http://127.0.0.1:{port}/api/v1/chutes/{SLUG}", headers={"X-API-Key": key}).json()
        pod = chute["instances"][0]
        pod_ip = _pod_ip(cluster, pod["pod"])
        node = next(n for n in cluster.nodes if n.name == pod["node"])
        for container in cluster.docker(
            node, "ps", "-q", "--filter", f"label=io.kubernetes.pod.name={pod['pod']}"
        ).split():
            cluster.docker(node, "update", "--cpuset-cpus", "0", container.decode())
        rows = {"gateway": [], "direct": []}
        for _ in range(args.runs):
            gateway = wrk(f"http://127.0.0.1:{port}/", host=f"{SLUG}.localhost", duration=args.duration,
                          connections=args.connections)  # fmt: skip
            direct = wrk(f"http://{pod_ip}:8000/", host=None, duration=args.duration, connections=args.connections)
            rows["gateway"].append(gateway)
            rows["direct"].append(direct)
        report(cluster_seconds, deploys, rows)
    finally:
        if host is not None:
            subprocess.run([CHUTES, "chutes", "delete", "k8s-hello", "--yes"], env=env, capture_output=True)
            host.terminate()
            host.wait(30)
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def report(cluster_seconds: float, deploys: list[float], rows: dict[str, list]) -> None:
    print(f"cluster start (2 nodes Ready, GPUs advertised): {cluster_seconds:.1f} s")
    each = ", ".join(f"{d:.1f}" for d in deploys)
    print(
        f"deploy-to-ready (chutes deploy until it returns), {len(deploys)} deploys: "
        f"median {statistics.median(deploys):.1f} s, all {each}  (goal < 30 s)"
    )
    print(f"{'path':<10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    median = {}
    for path, results in rows.items():
        best = sorted(results)[(len(results) - 1) // 2]
        median[path] = best[0]
        print(f"{path:<10}{best[0]:>10.0f}{best[1]:>10.2f}{best[2]:>10.2f}{best[3]:>8}")
    print(f"gateway / direct: {median['gateway'] / median['direct']:.2f}x  (goal >= 0.5x)")


def _pods(cluster: Cluster) -> str:
    return cluster.api.kubectl("get", "pods", "-n", "chutes", "-o", "name").strip()


def _pod_ip(cluster: Cluster, pod: str) -> str:
    return cluster.api.kubectl("get", "pod", pod, "-n", "chutes", "-o", "jsonpath={.status.podIP}")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit(f"Error: timed out after {timeout} s")


if __name__ == "__main__":
    main()
