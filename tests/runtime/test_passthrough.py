"""Passthrough cords against a real upstream HTTP server, both served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from chutes.proxy import Proxy
from tests.conftest import serve
from tests.fixtures.chutes.passthrough import make_chute

released = asyncio.Event()


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "body": body.decode(),
            "headers": {
                k: ",".join(request.headers.getlist(k))
                for k in ("x-trace", "authorization", "connection")
                if k in request.headers
            },
        },
        status_code=201,
        headers={"x-upstream": "yes"},
    )


async def stream(request: Request) -> StreamingResponse:
    async def events():
        yield b"data: first\n\n"
        await asyncio.wait_for(released.wait(), 5)
        yield b"data: second\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def slow(request: Request) -> JSONResponse:
    await asyncio.sleep(3)
    return JSONResponse({})


upstream_app = Starlette(
    routes=[
        Route("/v1/completions", echo, methods=["POST", "GET"]),
        Route("/upstream/chat", echo, methods=["POST"]),
        Route("/v1/stream", stream, methods=["POST"]),
        Route("/v1/slow", slow, methods=["POST"]),
    ]
)


@pytest.fixture
def chute_url(live_server) -> str:
    upstream = live_server(upstream_app)
    chute = make_chute(int(upstream.rsplit(":", 1)[1]))
    chute._proxy = Proxy(read_timeout=1.0)
    return live_server(chute)


async def test_method_query_body_and_headers_are_forwarded(chute_url) -> None:
    async with httpx.AsyncClient(base_url=chute_url) as c:
        r = await c.post(
            "/v1/completions?stream=false",
            content=b'{"prompt": "hi"}',
            headers={"x-trace": "abc", "authorization": "Bearer t", "content-type": "application/json"},
        )
    assert (r.status_code, r.headers["x-upstream"]) == (201, "yes")
    assert r.json() == {
        "method": "POST",
        "path": "/v1/completions",
        "query": "stream=false",
        "body": '{"prompt": "hi"}',
        "headers": {"x-trace": "abc", "authorization": "Bearer t"},
    }


async def test_passthrough_path_rewrites_the_upstream_path(chute_url) -> None:
    async with httpx.AsyncClient(base_url=chute_url) as c:
        r = await c.post("/v1/chat", json={"m": 1})
    assert r.json()["path"] == "/upstream/chat"


async def test_input_schema_is_validated_before_forwarding(chute_url) -> None:
    async with httpx.AsyncClient(base_url=chute_url) as c:
        r = await c.post("/v1/validated", json={"max_tokens": "x"})
        assert r.status_code == 422
        assert [e["loc"] for e in r.json()["detail"]] == [["body", "prompt"], ["body", "max_tokens"]]
        r = await c.post("/v1/validated", json={"prompt": "ok"})
        assert (r.status_code, json.loads(r.json()["body"])) == (201, {"prompt": "ok"})


async def test_a_json_schema_dict_is_validated_before_forwarding(chute_url) -> None:
    async with httpx.AsyncClient(base_url=chute_url) as c:
        r = await c.post("/v1/dict-validated", json={"prompt": 3})
        assert r.status_code == 422
        assert r.json()["detail"] == [
            {"type": "type", "loc": ["body", "prompt"], "msg": "3 is not of type 'string'", "input": 3}
        ]
        r = await c.post(
            "/v1/dict-validated", content=b'{"prompt": "ok"}', headers={"content-type": "application/json"}
        )
        assert (r.status_code, r.json()["body"]) == (201, '{"prompt": "ok"}')  # forwarded byte for byte


async def test_upstream_stream_is_relayed_unbuffered(chute_url) -> None:
    released.clear()
    async with httpx.AsyncClient(base_url=chute_url, timeout=5) as c:
        async with c.stream("POST", "/v1/stream", json={}) as r:
            lines = r.aiter_lines()
            assert await asyncio.wait_for(anext(lines), 2) == "data: first"
            released.set()
            rest = [line async for line in lines if line]
    assert rest == ["data: second"]


async def test_upstream_timeout_is_504(chute_url) -> None:
    async with httpx.AsyncClient(base_url=chute_url, timeout=10) as c:
        r = await c.post("/v1/slow", json={})
    assert r.status_code == 504
    assert "detail" in r.json()


async def test_upstream_down_is_502(live_server) -> None:
    with serve(upstream_app) as upstream:  # the chute is ready only once its upstream answers
        url = live_server(make_chute(int(upstream.rsplit(":", 1)[1])))
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/v1/completions", json={})
    assert r.status_code == 502
    assert "not reachable" in r.json()["detail"]


async def test_a_streamed_upload_over_the_limit_gets_413(live_server) -> None:
    upstream = live_server(upstream_app)
    chute = make_chute(int(upstream.rsplit(":", 1)[1]))
    chute.max_body_size = 1000

    async def chunks():
        for _ in range(20):
            yield b"x" * 100

    url = live_server(chute)
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/v1/completions", content=chunks())
        assert r.status_code == 413
        assert "1000 bytes" in r.json()["detail"]
        r = await c.post("/v1/completions", content=b"x" * 2000)
        assert r.status_code == 413
        r = await c.post("/v1/completions", content=b"x" * 500)
        assert r.status_code == 201


async def test_passthrough_headers_replace_the_clients(live_server) -> None:
    upstream = live_server(upstream_app)
    chute = make_chute(int(upstream.rsplit(":", 1)[1]))
    chute.passthrough_headers = {"Authorization": "Bearer upstream-key", "X-Trace": "chute"}
    url = live_server(chute)
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/v1/completions", content=b"{}", headers={"authorization": "Bearer client", "x-trace": "c"})
    assert r.json()["headers"] == {"authorization": "Bearer upstream-key", "x-trace": "chute"}
