"""Measures the CLI's fast paths: start-up of `chutes --help` and `chutes invoke`, and `chutes run`'s first answer.

    .venv/bin/python bench/bench_cli.py [--runs 20] [--starts 5]

Side by side, in one run (wall time swings with the machine's load; CPU time less so):
- wall time of `python -c pass`, `chutes --help`, `chutes invoke --help`, and a real `chutes invoke`
  of a running chute beside `curl` doing the same call (median and min of --runs);
- the modules that `chutes invoke` imports, by cumulative import time (python -X importtime);
- the time from starting `chutes run bench/apps/cord_app.py:chute` to its first successful answer,
  beside `uvicorn fastapi_app:app` serving the same endpoint (median of --starts).

Goals (issue 3): `chutes --help` and `chutes invoke` start well under 0.3 s; `chutes run` answers
its first request within 1.5 s of being started.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "bench" / "apps"
BIN = Path(sys.executable).parent
CHUTES = str(BIN / "chutes")
RESULTS = ROOT / "bench" / "results"
HELLO = json.dumps({"name": "Ada"})
# Measure what a user gets: with bytecode caches, whatever the calling shell says.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(argv: list[str], runs: int) -> dict[str, float]:
    """Runs argv `runs` times (after one warm-up) and returns wall (median, min) and CPU (median) seconds."""
    subprocess.run(argv, capture_output=True, check=False, env=ENV)
    walls, cpus = [], []
    for _ in range(runs):
        cpu_before, start = child_cpu(), time.perf_counter()
        result = subprocess.run(argv, capture_output=True, check=False, env=ENV)
        walls.append(time.perf_counter() - start)
        cpus.append(child_cpu() - cpu_before)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.decode()[-500:]}")
    return {"median": statistics.median(walls), "min": min(walls), "cpu": statistics.median(cpus)}


def post_hello(url: str) -> bool:
    request = urllib.request.Request(
        f"{url}/hello", data=HELLO.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def time_first_answer(argv: list[str], port: int, cwd: Path) -> float:
    """Starts a server and returns the seconds until POST /hello first answers 200."""
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = start + 30
        while time.perf_counter() < deadline:
            if post_hello(f"http://127.0.0.1:{port}"):
                return time.perf_counter() - start
            if process.poll() is not None:
                raise SystemExit(f"{' '.join(argv)} exited with {process.returncode}")
            time.sleep(0.005)
        raise SystemExit(f"{' '.join(argv)} did not answer within 30 s")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)


def import_profile(argv: list[str]) -> list[tuple[str, float]]:
    """Returns the top-level imports of `chutes ARGV` with their cumulative milliseconds."""
    code = (
        f"import sys; sys.argv = ['chutes', *{argv!r}]\n"
        "from chutes_cli.main import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
    )
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=ENV)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit() and not name.startswith("   "):
            rows.append((name.strip(), int(cumulative) / 1000))
    return sorted(rows, key=lambda row: -row[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()

    port = free_port()
    server = subprocess.Popen(
        [CHUTES, "run", "cord_app.py:chute", "--port", str(port), "--log-level", "warning"],
        cwd=APPS,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not post_hello(url):
            if time.monotonic() > deadline:
                raise SystemExit("the benchmark chute did not start")
            time.sleep(0.05)
        startup = {
            "python -c pass": time_command([sys.executable, "-c", "pass"], args.runs),
            "python -c 'import typer'": time_command([sys.executable, "-c", "import typer"], args.runs),
            "chutes --help": time_command([CHUTES, "--help"], args.runs),
            "chutes invoke --help": time_command([CHUTES, "invoke", "--help"], args.runs),
            "chutes invoke /hello": time_command(
                [CHUTES, "invoke", "/hello", "--json", HELLO, "--url", url], args.runs
            ),
        }
        if shutil.which("curl"):
            curl = ["curl", "-sf", "-H", "Content-Type: application/json", "-d", HELLO, f"{url}/hello"]
            startup["curl /hello"] = time_command(curl, args.runs)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)

    profile = import_profile(["invoke", "/hello", "--json", HELLO, "--url", f"http://127.0.0.1:{free_port()}"])

    first_answers: dict[str, list[float]] = {"chutes run": [], "chutes run --dev": [], "uvicorn (FastAPI)": []}
    for _ in range(args.starts):
        for name, extra in (("chutes run", []), ("chutes run --dev", ["--dev"])):
            port = free_port()
            argv = [CHUTES, "run", "cord_app.py:chute", "--port", str(port), *extra]
            first_answers[name].append(time_first_answer(argv, port, APPS))
        port = free_port()
        uvicorn = [str(BIN / "uvicorn"), "fastapi_app:app", "--port", str(port), "--no-access-log"]
        first_answers["uvicorn (FastAPI)"].append(time_first_answer(uvicorn, port, APPS))

    print(f"{'command':32} {'median s':>9} {'min s':>7} {'cpu s':>7}")
    for name, figures in startup.items():
        print(f"{name:32} {figures['median']:9.3f} {figures['min']:7.3f} {figures['cpu']:7.3f}")
    print("\nchutes invoke: slowest top-level imports (cumulative ms, one run)")
    for name, ms in profile[:8]:
        print(f"  {name:40} {ms:7.1f}")
    print(f"\n{'first answer after start':32} {'median s':>9} {'min s':>7}")
    medians = {}
    for name, values in first_answers.items():
        medians[name] = statistics.median(values)
        print(f"{name:32} {medians[name]:9.3f} {min(values):7.3f}")
    ratio = medians["chutes run"] / medians["uvicorn (FastAPI)"]
    print(f"chutes run / uvicorn: {ratio:.2f}x")

    goals = [
        ("chutes --help under 0.3 s", startup["chutes --help"]["median"] < 0.3),
        ("chutes invoke under 0.3 s", startup["chutes invoke /hello"]["median"] < 0.3),
        ("chutes run answers within 1.5 s", medians["chutes run"] < 1.5),
    ]
    for goal, met in goals:
        print(f"goal: {goal}: {'met' if met else 'MISSED'}")
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (RESULTS / f"cli-{stamp}.json").write_text(
        json.dumps({"startup": startup, "first_answer": first_answers, "imports": profile[:20]}, indent=2)
    )


if __name__ == "__main__":
    main()
