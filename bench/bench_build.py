"""Measures `chutes build` on a real engine against a plain FastAPI image built the same way.

For the example chute (examples/stream_chute) and a FastAPI app with the same two endpoints, both
FROM the same base and installing the same wheels offline: cold build time (--no-cache), code-only
rebuild time, image size, and container start-to-ready time (median of --runs starts).

    eval "$(bash .ci/engine.sh)"
    .venv/bin/python bench/bench_build.py [--runs 5]

Goals (issue 4): a code-only rebuild under 2 s and start-to-ready under 2 s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import docker
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chutes_build.wheel import fetch_wheelhouse, runtime_pins  # noqa: E402
from chutes_cli.container import RunningChute, free_port, start_chute, stop_chute  # noqa: E402

CHUTES = str(Path(sys.executable).with_name("chutes"))
BASE = os.environ.get("CHUTES_BASE_IMAGE", "localhost/chutes-base:bookworm")
CHUTE_TAG = "localhost/chutes-bench/chute:latest"
PLAIN_TAG = "localhost/chutes-bench/fastapi:latest"
GOAL_SECONDS = 2.0

PLAIN_APP = """
import asyncio, json, os
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

app = FastAPI()

class Text(BaseModel):
    text: str
    delay: float = 0.0

@app.get("/_ready")
async def ready() -> dict:
    return {"ready": True}

@app.post("/echo")
async def echo(body: Text) -> dict:
    return {"echo": body.text, "greeting": os.environ.get("GREETING"), "version": 1}

@app.post("/words")
async def words(body: Text):
    async def frames():
        for index, word in enumerate(body.text.split()):
            yield f"data: {json.dumps({'index': index, 'word': word})}\\n\\n"
            await asyncio.sleep(body.delay)
    return StreamingResponse(frames(), media_type="text/event-stream")
"""

PLAIN_DOCKERFILE = f"""
FROM {BASE}
COPY wheels/ /opt/wheels/
RUN pip install --quiet --no-index --find-links /opt/wheels -r /opt/wheels/requirements.txt
COPY app.py /app/
USER chutes
CMD ["uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8000"]
"""


def build_chute(folder: Path, *, no_cache: bool) -> tuple[float, float]:
    """Runs `chutes build`; returns (wall seconds of the command, seconds the engine reported)."""
    args = [CHUTES, "build", "stream_chute:chute", "--tag", CHUTE_TAG] + (["--no-cache"] if no_cache else [])
    started = time.perf_counter()
    result = subprocess.run(args, cwd=folder, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"chutes build failed:\n{result.stderr[-2000:]}")
    engine_seconds = float(re.search(r" in ([0-9.]+) s;", result.stderr).group(1))
    return wall, engine_seconds


def build_plain(client: docker.DockerClient, folder: Path, *, no_cache: bool) -> float:
    """Builds the plain FastAPI image from `folder` through the SDK; returns seconds."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=".")
    buffer.seek(0)
    started = time.perf_counter()
    for chunk in client.api.build(
        fileobj=buffer, custom_context=True, tag=PLAIN_TAG, rm=True, pull=False, nocache=no_cache, decode=True
    ):
        if "error" in chunk:
            sys.exit(f"plain build failed: {chunk['error']}")
    return time.perf_counter() - started


def start_to_ready(client: docker.DockerClient, ref: str, runs: int) -> list[float]:
    """Starts `ref` `runs` times; returns seconds from the start call to the first 200 on /_ready."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        running = start_chute(client, ref, port=free_port())
        try:
            times.append(poll_ready(running, started))
            check_answers(running.url)
        finally:
            stop_chute(running)
    return times


def poll_ready(running: RunningChute, started: float, timeout: float = 60) -> float:
    with httpx.Client(timeout=2) as http:
        while time.perf_counter() - started < timeout:
            try:
                if http.get(f"{running.url}/_ready").status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.01)
    sys.exit(f"{running} was not ready within {timeout} s")


def check_answers(url: str) -> None:
    """Checks one JSON and one streamed answer, so a broken image is never timed as a fast one."""
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.post("/echo", json={"text": "hi"}).json()["echo"] == "hi"
        body = http.post("/words", json={"text": "a b"}).text
        assert body.count("data: ") == 2, body


def edit_code(path: Path) -> None:
    path.write_text(path.read_text() + f"# edit {uuid.uuid4().hex}\n")


def image_size(client: docker.DockerClient, ref: str) -> int:
    return client.images.get(ref).attrs["Size"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="starts and code-only rebuilds to take the median of")
    args = parser.parse_args()
    client = docker.from_env(timeout=300)
    client.ping()
    base_size = image_size(client, BASE)
    work = Path(tempfile.mkdtemp(prefix="chutes-bench-"))
    try:
        chute_dir = work / "stream_chute"
        shutil.copytree(ROOT / "examples" / "stream_chute", chute_dir)
        plain_dir = work / "plain"
        shutil.copytree(fetch_wheelhouse(runtime_pins()), plain_dir / "wheels")
        (plain_dir / "app.py").write_text(textwrap.dedent(PLAIN_APP))
        (plain_dir / "Dockerfile").write_text(PLAIN_DOCKERFILE)

        cold_wall, cold_engine = build_chute(chute_dir, no_cache=True)
        rebuilds = []
        for _ in range(args.runs):
            edit_code(chute_dir / "stream_chute.py")
            rebuilds.append(build_chute(chute_dir, no_cache=False))
        plain_cold = build_plain(client, plain_dir, no_cache=True)
        plain_rebuilds = []
        for _ in range(args.runs):
            edit_code(plain_dir / "app.py")
            plain_rebuilds.append(build_plain(client, plain_dir, no_cache=False))
        chute_ready = start_to_ready(client, CHUTE_TAG, args.runs)
        plain_ready = start_to_ready(client, PLAIN_TAG, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    figures = {
        "cold_build_s": {"chute_cli": cold_wall, "chute_engine": cold_engine, "fastapi": plain_cold},
        "code_rebuild_s": {
            "chute_cli": statistics.median(w for w, _ in rebuilds),
            "chute_engine": statistics.median(e for _, e in rebuilds),
            "fastapi": statistics.median(plain_rebuilds),
        },
        "image_size_mb": {
            "base": base_size / 1e6,
            "chute": image_size(client, CHUTE_TAG) / 1e6,
            "fastapi": image_size(client, PLAIN_TAG) / 1e6,
        },
        "start_to_ready_s": {
            "chute": statistics.median(chute_ready),
            "chute_max": max(chute_ready),
            "fastapi": statistics.median(plain_ready),
            "fastapi_max": max(plain_ready),
        },
        "runs": args.runs,
    }
    report(figures)
    out = ROOT / "bench" / "results" / "build.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nraw figures: {out}")


def report(f: dict) -> None:
    cold, rebuild, size, ready = f["cold_build_s"], f["code_rebuild_s"], f["image_size_mb"], f["start_to_ready_s"]
    rows = [
        (
            "cold build (--no-cache)",
            f"{cold['chute_cli']:.2f} s ({cold['chute_engine']:.2f} s engine)",
            f"{cold['fastapi']:.2f} s",
            cold["chute_engine"] / cold["fastapi"],
        ),
        (
            "code-only rebuild (median)",
            f"{rebuild['chute_cli']:.2f} s ({rebuild['chute_engine']:.2f} s engine)",
            f"{rebuild['fastapi']:.2f} s",
            rebuild["chute_engine"] / rebuild["fastapi"],
        ),
        ("image size", f"{size['chute']:.0f} MB", f"{size['fastapi']:.0f} MB", size["chute"] / size["fastapi"]),
        (
            "start-to-ready (median)",
            f"{ready['chute']:.2f} s (max {ready['chute_max']:.2f})",
            f"{ready['fastapi']:.2f} s (max {ready['fastapi_max']:.2f})",
            ready["chute"] / ready["fastapi"],
        ),
    ]
    print(f"{'measure':<28} {'chutes build':<30} {'plain FastAPI':<22} ratio")
    for name, chute, plain, ratio in rows:
        print(f"{name:<28} {chute:<30} {plain:<22} {ratio:.2f}x")
    print(f"(base image {size['base']:.0f} MB; {f['runs']} runs)")
    for name, value in (("code-only rebuild", rebuild["chute_cli"]), ("start-to-ready", ready["chute"])):
        verdict = "met" if value < GOAL_SECONDS else "MISSED"
        print(f"goal {name} < {GOAL_SECONDS:.0f} s: {verdict} ({value:.2f} s)")


if __name__ == "__main__":
    main()
