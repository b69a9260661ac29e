"""Streaming cords through a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.fixtures.chutes.streams import chute


@pytest.fixture
def url(live_server) -> str:
    return live_server(chute)


def sse_payloads(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


async def test_dict_items_are_sse_frames(url) -> None:
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/sse", json={"count": 2})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream"
    assert r.text == (
        'data: {"token":"t0","done":false}\n\ndata: {"token":"t1","done":false}\n\ndata: {"token":"","done":true}\n\n'
    )


async def test_each_event_reaches_the_client_before_the_next_is_made(url) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as c:
        async with c.stream("POST", "/gated", json={}) as r:
            lines = r.aiter_lines()
            first = await asyncio.wait_for(anext(lines), 2)
            assert first == 'data: {"token":"first"}'
            chute.gate.set()  # only now may the second event be made
            rest = [line async for line in lines if line]
    assert rest == ['data: {"token":"second"}']


async def test_ndjson_raw_text_binary_and_sync_streams(url) -> None:
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/ndjson", json={"count": 2})
        assert (r.headers["content-type"], r.text) == ("application/x-ndjson", '{"i":0}\n{"i":1}\n')
        r = await c.post("/text", json={})
        assert r.text == "data: one\n\ndata: two\n\n"
        r = await c.post("/audio", json={})
        assert (r.headers["content-type"], r.content) == ("audio/wav", b"RIFFWAVE")
        r = await c.post("/sync", json={"count": 3})
        assert sse_payloads(r.text) == [{"i": 0}, {"i": 1}, {"i": 2}]
        r = await c.post("/empty", json={})
        assert (r.status_code, r.text) == (200, "")


async def test_an_error_before_the_first_item_gets_a_real_status(url) -> None:
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/fails-first", json={})
        assert (r.status_code, r.json()) == (500, {"detail": "Internal Server Error"})
        r = await c.post("/fails-first", json={"status": 409})
        assert (r.status_code, r.json()) == (409, {"detail": "not today"})
        r = await c.post("/sse", json={"count": "many"})
        assert r.status_code == 422


async def test_an_error_mid_stream_ends_sse_with_an_error_event(url) -> None:
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/fails-later", json={})
    assert r.status_code == 200
    assert r.text == ('data: {"token":"ok"}\n\nevent: error\ndata: {"detail":"Internal Server Error","status":500}\n\n')


async def test_an_error_mid_ndjson_stream_aborts_the_connection(url) -> None:
    async with httpx.AsyncClient(base_url=url) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post("/fails-later-ndjson", json={})
        assert (await c.post("/ndjson", json={"count": 1})).status_code == 200


async def test_a_client_that_leaves_stops_the_generator(url) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as c:
        async with c.stream("POST", "/endless", json={}) as r:
            await anext(r.aiter_lines())
    for _ in range(200):
        if getattr(chute, "endless_closed", False):
            break
        await asyncio.sleep(0.01)
    assert chute.endless_closed is True
