"""Startup and shutdown hooks, readiness, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from chutes.chute import Chute
from chutes.exceptions import StartupError
from chutes.testing import client
from tests.conftest import free_port
from tests.fixtures.chutes.lifecycle import chute as lifecycle_chute

ROOT = Path(__file__).resolve().parents[2]


async def test_hooks_run_in_priority_order_and_their_objects_serve_cords(live_server) -> None:
    url = live_server(lifecycle_chute)
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.get("/order")
        assert r.json() == {"order": ["first", "middle", "last (sync)"], "client": "made"}
        assert (await c.get("/_ready")).json() == {"ready": True, "phase": "ready"}


async def test_ready_is_503_with_the_phase_until_startup_ran() -> None:
    chute = Chute(username="tests", name="unstarted", image="x")

    @chute.on_startup()
    async def load(self) -> None:
        pass

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=chute), base_url="http://t") as c:
        r = await c.get("/_ready")
        assert r.status_code == 503
        assert r.json() == {"ready": False, "phase": "waiting for the server's lifespan startup event"}
    async with client(chute) as c:
        assert (await c.get("/_ready")).status_code == 200


async def test_a_failing_startup_hook_is_reported_with_its_name_and_traceback() -> None:
    from tests.fixtures.chutes.failing_startup import chute

    with pytest.raises(StartupError) as info:
        async with client(chute):
            pass
    message = str(info.value)
    assert "on_startup hook 'load_model' (failing_startup.py:" in message
    assert "FileNotFoundError: weights.bin is missing" in message
    assert chute.phase.startswith("failed: on_startup hook 'load_model'")


def start(module: str, port: int, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", module, "--port", str(port), "--log-level", "info"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_failing_startup_hook_stops_the_server() -> None:
    process = start("tests.fixtures.chutes.failing_startup:chute", free_port(), dict(os.environ))
    output, _ = process.communicate(timeout=30)
    assert process.returncode != 0
    assert "on_startup hook 'load_model'" in output
    assert "weights.bin is missing" in output


def test_sigterm_lets_in_flight_requests_finish_then_runs_shutdown_hooks(tmp_path) -> None:
    trace = tmp_path / "trace.txt"
    port = free_port()
    process = start("tests.fixtures.chutes.lifecycle:chute", port, {**os.environ, "LIFECYCLE_TRACE": str(trace)})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/_ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.05)
        with httpx.Client(base_url=url, timeout=10) as c:
            result = {}
            thread = threading.Thread(target=lambda: result.update(r=c.post("/slow", json={"seconds": 1.0})))
            thread.start()
            while not trace.exists() or "slow started" not in trace.read_text():
                time.sleep(0.01)
            process.send_signal(signal.SIGTERM)
            thread.join(15)
        assert result["r"].json() == {"slept": 1.0}
        # uvicorn re-raises the signal once it has shut down cleanly, so the status is -SIGTERM
        assert process.wait(timeout=15) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert trace.read_text().splitlines() == ["slow started", "slow finished", "closed client", "bye"]
