"""Concurrency and body-size limits."""

from __future__ import annotations

import asyncio

import httpx

from chutes.chute import Chute
from chutes.testing import client


def limited_chute() -> Chute:
    chute = Chute(username="tests", name="limits", image="tests/limits", concurrency=2, max_body_size=1024)

    @chute.on_startup()
    async def setup(self) -> None:
        self.release = asyncio.Event()
        self.runs = 0

    @chute.cord(public_api_path="/wait")
    async def wait(self) -> dict:
        self.runs += 1
        await self.release.wait()
        return {"ok": True}

    @chute.cord(public_api_path="/echo")
    async def echo(self, text: str) -> dict:
        return {"size": len(text)}

    return chute


async def test_requests_over_concurrency_get_429_and_are_not_run(live_server) -> None:
    chute = limited_chute()
    url = live_server(chute)
    async with httpx.AsyncClient(base_url=url, timeout=5) as c:
        running = [asyncio.create_task(c.post("/wait")) for _ in range(2)]
        while chute.runs < 2:
            await asyncio.sleep(0.01)
        refused = await c.post("/wait")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert "limit of 2" in refused.json()["detail"]
        assert chute.runs == 2
        chute.release.set()
        assert [r.status_code for r in await asyncio.gather(*running)] == [200, 200]
        assert (await c.post("/wait")).status_code == 200


async def test_bodies_over_the_limit_get_413() -> None:
    chute = limited_chute()
    async with client(chute) as c:
        assert (await c.post("/echo", json={"text": "x" * 100})).json() == {"size": 100}
        r = await c.post("/echo", json={"text": "x" * 2000})
        assert r.status_code == 413
        assert "1024 bytes" in r.json()["detail"]


async def test_chunked_bodies_over_the_limit_get_413(live_server) -> None:
    url = live_server(limited_chute())

    async def chunks():
        yield b'{"text": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'"}'

    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
