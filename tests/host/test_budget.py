"""The host's body budgets (chutes_host.gateway.budget) on a real server: bytes and time counted as a body
streams in."""

from __future__ import annotations

import asyncio

import httpx

from chutes.protocol import server_options
from chutes_host.gateway.budget import MIN_RATE, BodyBudget, Budget
from tests.security.test_clients import port_of, raw_request

SEEN: list[str] = []


async def echo_size(scope, receive, send) -> None:
    """Reads the whole body (or notes the disconnect it is given), and answers its size."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": message["type"] + ".complete"})
        return await send({"type": "lifespan.shutdown.complete"})
    if scope["path"] == "/ignore":  # never reads its body
        size = -1
    else:
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                SEEN.append("disconnect")
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"%d" % size})


def budgeted(seconds: float = 30.0, size: int = 64 * 1024) -> BodyBudget:
    return BodyBudget(echo_size, budget_of=lambda scope: Budget(size, seconds))


async def test_a_body_within_its_budget_is_read_whole(live_server) -> None:
    url = live_server(budgeted(), **server_options())
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        assert (await client.post("/", content=b"x" * 60_000)).text == "60000"


async def test_a_declared_length_over_the_budget_is_413_before_any_body(live_server) -> None:
    url = live_server(budgeted(), **server_options())
    head = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % (300 << 20)
    answer = await raw_request(port_of(url), head, read_timeout=10)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"larger than this route's limit of 64 KiB" in answer
    # a route that never reads its body is not refused: the budget applies to what is read
    answer = await raw_request(port_of(url), head.replace(b"POST / ", b"POST /ignore "), read_timeout=10)
    assert answer.startswith(b"HTTP/1.1 200 ")


async def test_a_streamed_body_is_cut_off_as_it_passes_its_budget(live_server) -> None:
    url = live_server(budgeted(), **server_options())
    sent = 0

    async def endless():
        nonlocal sent
        for _ in range(1024):  # 64 MiB, unless the server answers first
            sent += 64 * 1024
            yield b"x" * (64 * 1024)

    SEEN.clear()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        try:
            answer = await client.post("/", content=endless())
        except httpx.HTTPError:  # the server closed while the rest was still being written
            answer = None
    assert answer is None or answer.status_code == 413
    assert sent < 16 << 20
    assert SEEN == ["disconnect"]  # the app saw the client go, and its answer was not sent


async def test_a_slow_body_gets_408_within_its_time(live_server) -> None:
    url = live_server(budgeted(seconds=0.5), **server_options())
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(url))
    writer.write(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n")
    started = asyncio.get_running_loop().time()

    async def trickle() -> None:
        while True:  # a byte every 0.1 s: never a stall, never done
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.1)

    dripping = asyncio.create_task(trickle())
    try:
        async with asyncio.timeout(10):
            answer = await reader.readuntil(b"\r\n\r\n")
    finally:
        dripping.cancel()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert asyncio.get_running_loop().time() - started < 3


async def test_a_big_body_that_keeps_coming_is_not_cut_off(live_server) -> None:
    url = live_server(budgeted(seconds=0.2, size=16 << 20), **server_options())

    async def steady():
        for _ in range(16):  # 4 MiB over ~0.8 s: far beyond 0.2 s, far above MIN_RATE
            yield b"x" * (256 * 1024)
            await asyncio.sleep(0.05)

    assert 4 << 20 > MIN_RATE * 0.8
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        assert (await client.post("/", content=steady())).text == str(4 << 20)
