"""A chute with passthrough cords is ready only once its upstream accepts connections."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import uvicorn

from chutes.exceptions import StartupError
from chutes.testing import client
from tests.conftest import free_port
from tests.fixtures.chutes.passthrough import make_chute
from tests.runtime.test_passthrough import upstream_app

FIXTURES = Path(__file__).parents[1] / "fixtures" / "chutes"
LIFESPAN = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}


async def start_upstream(port: int) -> tuple[uvicorn.Server, asyncio.Task]:
    server = uvicorn.Server(
        uvicorn.Config(upstream_app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            return server, task
        await asyncio.sleep(0.01)
    raise AssertionError("the upstream server did not start")


async def test_ready_is_503_waiting_for_the_upstream_until_it_answers() -> None:
    port = free_port()
    chute = make_chute(port)
    inbox: asyncio.Queue[dict] = asyncio.Queue()
    outbox: asyncio.Queue[dict] = asyncio.Queue()
    lifespan = asyncio.create_task(chute(dict(LIFESPAN), inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    upstream = None
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=chute), base_url="http://chute") as c:
            for _ in range(500):
                ready = await c.get("/_ready")
                if ready.json()["phase"].startswith("waiting for upstream"):
                    break
                await asyncio.sleep(0.01)
            assert ready.status_code == 503
            assert ready.json() == {"ready": False, "phase": f"waiting for upstream 127.0.0.1:{port}"}
            await asyncio.sleep(0.2)  # several polls later, still waiting
            assert outbox.empty() and (await c.get("/_ready")).status_code == 503

            upstream = await start_upstream(port)
            assert (await asyncio.wait_for(outbox.get(), 10))["type"] == "lifespan.startup.complete"
            assert (await c.get("/_ready")).json() == {"ready": True, "phase": "ready"}
            answer = await c.post("/v1/completions", json={"prompt": "hi"})
            assert answer.status_code == 201 and answer.json()["path"] == "/v1/completions"
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(lifespan, 10)
        if upstream is not None:
            upstream[0].should_exit = True
            await upstream[1]


async def test_an_upstream_that_never_answers_fails_startup_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUTES_UPSTREAM_TIMEOUT", "0.3")
    port = free_port()
    chute = make_chute(port)
    with pytest.raises(StartupError, match=rf"upstream 127\.0\.0\.1:{port} did not accept a connection within 0\.3 s"):
        async with client(chute):
            pass
    assert chute.phase == f"failed: upstream 127.0.0.1:{port} did not accept a connection within 0.3 s"
    assert not chute.ready


def test_the_server_process_exits_non_zero_naming_the_upstream() -> None:
    upstream_port = free_port()
    env = {**os.environ, "UPSTREAM_PORT": str(upstream_port), "CHUTES_UPSTREAM_TIMEOUT": "0.5"}
    result = subprocess.run(
        [sys.executable, "-m", "chutes.serve", "passthrough_waits:chute", "--host", "127.0.0.1", "--port", "0"],
        cwd=FIXTURES,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert f"the passthrough upstream 127.0.0.1:{upstream_port} did not accept a connection within 0.5 s" in (
        result.stderr
    )
    assert "CHUTES_UPSTREAM_TIMEOUT=SECONDS" in result.stderr


async def test_an_upstream_port_taken_before_startup_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    server, task = await start_upstream(port)  # e.g. another chute's model server
    try:
        with caplog.at_level(logging.INFO, logger="chutes"):
            async with client(make_chute(port)) as c:
                assert (await c.get("/_ready")).status_code == 200
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert f"passthrough upstream 127.0.0.1:{port} already accepts connections before on_startup ran" in (
            warnings[0].getMessage()
        )
    finally:
        server.should_exit = True
        await task


async def test_a_chute_without_passthrough_cords_does_not_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUTES_UPSTREAM_TIMEOUT", "nonsense")  # never read without passthrough cords
    from chutes.chute import Chute

    chute = Chute(username="tests", name="plain", image="x")
    async with client(chute) as c:
        assert (await c.get("/_ready")).status_code == 200


async def test_a_bad_timeout_setting_is_a_clear_startup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUTES_UPSTREAM_TIMEOUT", "soon")
    with pytest.raises(StartupError, match="CHUTES_UPSTREAM_TIMEOUT='soon' must be a number of seconds above 0"):
        async with client(make_chute(free_port())):
            pass
