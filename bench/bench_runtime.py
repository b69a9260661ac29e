"""Cord runtime vs plain FastAPI vs a bare ASGI callable, under wrk, one server core and one client core.

Run: .venv/bin/python bench/bench_runtime.py [--duration 5] [--connections 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
APPS_DIR = BENCH_DIR / "apps"
RESULTS_DIR = BENCH_DIR / "results"
SERVER_CORE, CLIENT_CORE = "0", "1"
APPS = {"cord": "cord_app:chute", "fastapi": "fastapi_app:app", "bare": "bare_app:app"}
STREAM_EVENTS = 100

# wrk's Lua hooks: POST the body, and print one machine-readable line at the end.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%(body)s]]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Case:
    """One workload: the path every app serves it at, the body, and what a correct answer is."""

    name: str
    path: str
    body: str
    expected: dict | None = None
    stream: bool = False


CASES = [
    Case("a direct-param", "/hello", '{"name": "Ada"}', {"message": "Hello, Ada!"}),
    Case(
        "b pydantic-input",
        "/person",
        '{"name": "Ada", "age": 36, "email": "ada@example.com"}',
        {"message": "Hello, Ada!", "age": 36},
    ),
    Case("c stream-100", "/stream", '{"prompt": "Ada"}', stream=True),
]


@dataclass
class Row:
    case: str
    app: str
    valid: bool = False
    problem: str = ""
    requests: int = 0
    req_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    events_per_s: float | None = None
    ratio_vs_fastapi: float | None = None
    rounds: int = 1
    wrk: dict = field(default_factory=dict)


def ensure_wrk() -> str:
    """Returns wrk's path, installing the Debian package if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if apt is None or (prefix and shutil.which("sudo") is None):
        sys.exit("Error: wrk is not installed and cannot be installed here; install it (e.g. 'apt-get install wrk')")
    print("wrk is missing; installing it with apt-get ...", flush=True)
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
        if subprocess.run(prefix + command, stdout=subprocess.DEVNULL).returncode != 0:
            sys.exit(f"Error: '{' '.join(command)}' failed; install wrk yourself and run the bench again")
    return shutil.which("wrk") or sys.exit("Error: wrk was installed but is not on PATH")


def check_cores() -> None:
    if os.cpu_count() is None or os.cpu_count() < 2 or shutil.which("taskset") is None:
        sys.exit("Error: the bench pins the server and wrk to cores 0 and 1; it needs 2 cores and taskset (util-linux)")


def find_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(app: str, port: int):
    """Runs a uvicorn server for `app` on core 0 until the block ends; always kills it."""
    command = [
        "taskset", "-c", SERVER_CORE, sys.executable, "-m", "uvicorn", app,
        "--app-dir", str(APPS_DIR), "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--workers", "1",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("CHUTES_DEV", "CHUTES_LOG_REQUESTS")}
    server = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        wait_for_port(server, port)
        yield server
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_for_port(server: subprocess.Popen, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the server did not listen on port {port} within {timeout:.0f}s")


def check_answer(case: Case, url: str) -> str:
    """Makes one request, and returns what is wrong with the answer ('' when it is right)."""
    response = httpx.post(url, content=case.body, headers={"content-type": "application/json"}, timeout=10)
    if response.status_code != 200:
        return f"probe got HTTP {response.status_code}: {response.text[:200]}"
    if case.stream:
        frames = [f for f in response.text.split("\n\n") if f.startswith("data: ")]
        if len(frames) != STREAM_EVENTS:
            return f"probe got {len(frames)} SSE frames, not {STREAM_EVENTS}"
        return ""
    if response.json() != case.expected:
        return f"probe got {response.text[:200]}, not {case.expected}"
    return ""


def run_wrk(wrk: str, script: str, url: str, seconds: float, connections: int) -> dict:
    """Runs wrk on core 1 for `seconds`, and returns its summary (raises on a failed run)."""
    command = [
        "taskset", "-c", CLIENT_CORE, wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        "--timeout", "5s", "-s", script, url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[len("BENCH ") :])
    raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


def measure(wrk: str, case: Case, app_name: str, args: argparse.Namespace, script: str) -> Row:
    """Starts the app's server, checks one answer, warms up, and measures; returns the row."""
    row = Row(case.name, app_name)
    port = find_free_port()
    url = f"http://127.0.0.1:{port}{case.path}"
    try:
        with serving(APPS[app_name], port):
            row.problem = check_answer(case, url)
            if row.problem:
                return row
            if args.warmup > 0:
                run_wrk(wrk, script, url, args.warmup, args.connections)
            summary = run_wrk(wrk, script, url, args.duration, args.connections)
    except (RuntimeError, httpx.HTTPError, subprocess.TimeoutExpired) as exc:
        row.problem = str(exc)
        return row
    row.wrk = summary
    seconds = summary["duration_us"] / 1e6
    row.requests = summary["requests"]
    row.req_per_s = row.requests / seconds if seconds else 0.0
    row.p50_ms = summary["p50_us"] / 1000
    row.p99_ms = summary["p99_us"] / 1000
    if case.stream:
        row.events_per_s = row.req_per_s * STREAM_EVENTS
    errors = {k: summary[k] for k in ("connect", "read", "write", "status", "timeout") if summary[k]}
    if errors:
        row.problem = "wrk reported " + ", ".join(f"{v} {k} errors" for k, v in errors.items())
    elif row.requests == 0:
        row.problem = "wrk completed no requests"
    row.valid = not row.problem
    return row


def pick_medians(samples: list[Row]) -> list[Row]:
    """Takes every round's rows, and returns one row per case and app: the median by req/s, or the failure."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for sample in samples:
        groups.setdefault((sample.case, sample.app), []).append(sample)
    rows = []
    for group in groups.values():
        failed = [s for s in group if not s.valid]
        row = failed[0] if failed else sorted(group, key=lambda s: s.req_per_s)[len(group) // 2]
        rows.append(replace(row, rounds=len(group)))
    return rows


def add_ratios(rows: list[Row]) -> None:
    baseline = {r.case: r for r in rows if r.app == "fastapi" and r.valid}
    for row in rows:
        base = baseline.get(row.case)
        if row.valid and base is not None and base.req_per_s:
            row.ratio_vs_fastapi = row.req_per_s / base.req_per_s


def print_table(rows: list[Row]) -> None:
    header = f"{'case':<18}{'app':<9}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs FastAPI':>12}{'events/s':>12}  note"
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = f"{r.ratio_vs_fastapi:.2f}x" if r.ratio_vs_fastapi is not None else "-"
        events = f"{r.events_per_s:,.0f}" if r.events_per_s is not None else ""
        note = "" if r.valid else f"INVALID: {r.problem}"
        figures = f"{r.req_per_s:>10,.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{ratio:>12}{events:>12}"
        print(f"{r.case:<18}{r.app:<9}{figures}  {note}")


def judge_goals(rows: list[Row]) -> dict[str, str]:
    """Returns each goal of the runtime with 'met', 'missed' or 'unmeasured'."""
    goals = {"a direct-param": 1.5, "b pydantic-input": 1.5, "c stream-100": 1.0}
    verdicts = {}
    for case, target in goals.items():
        cord = next((r for r in rows if r.case == case and r.app == "cord"), None)
        if cord is None or cord.ratio_vs_fastapi is None:
            verdicts[f"{case}: cord >= {target}x FastAPI"] = "unmeasured"
            continue
        met = cord.ratio_vs_fastapi >= target
        verdicts[f"{case}: cord >= {target}x FastAPI"] = f"{'met' if met else 'missed'} ({cord.ratio_vs_fastapi:.2f}x)"
    return verdicts


def describe_machine(args: argparse.Namespace) -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "versions": {p: version(p) for p in ("chutes", "fastapi", "starlette", "pydantic", "uvicorn", "uvloop")},
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "rounds": args.rounds,
            "wrk_threads": 1,
            "server": "uvicorn --loop uvloop --http httptools --workers 1 --no-access-log --log-level warning",
            "server_core": int(SERVER_CORE),
            "client_core": int(CLIENT_CORE),
        },
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds measured per row (default 5)")
    parser.add_argument("--connections", type=int, default=50, help="open wrk connections (default 50)")
    parser.add_argument("--warmup", type=float, default=1, help="seconds of discarded load before each row")
    parser.add_argument("--rounds", type=int, default=1, help="measure each row N times, interleaved; print medians")
    args = parser.parse_args()
    if args.duration < 1 or args.connections < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--duration must be >= 1, --connections >= 1, --warmup >= 0 and --rounds >= 1")
    return args


def main() -> int:
    args = parse_args()
    check_cores()
    wrk = ensure_wrk()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so servers are killed on the way out
    machine = describe_machine(args)
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {}
        for case in CASES:
            scripts[case.name] = Path(tmp, f"{case.path.strip('/')}.lua")
            scripts[case.name].write_text(WRK_SCRIPT % {"body": case.body})
        for round_number in range(1, args.rounds + 1):
            for case in CASES:
                for app_name in APPS:
                    print(f"  round {round_number}: {case.name} / {app_name} ...", file=sys.stderr, flush=True)
                    samples.append(measure(wrk, case, app_name, args, str(scripts[case.name])))
    rows = pick_medians(samples)
    add_ratios(rows)
    print_table(rows)
    verdicts = judge_goals(rows)
    for goal, verdict in verdicts.items():
        print(f"goal {goal}: {verdict}")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"runtime-{stamp}.json"
    report = {**machine, "rows": [asdict(r) for r in rows], "goals": verdicts, "samples": [asdict(s) for s in samples]}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {out.relative_to(BENCH_DIR.parent)}")
    return 0 if all(r.valid for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
