"""Testing a chute in-process, with its startup and shutdown hooks run as a server would.

from chutes.testing import client

async def test_hello():
    async with client(chute) as c:
        response = await c.post("/hello", json={"name": "Ada"})
        assert response.json() == {"message": "Hello, Ada!"}
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from chutes.exceptions import StartupError


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Runs an ASGI app's lifespan startup on entry and its shutdown on exit."""
    inbox: asyncio.Queue[dict] = asyncio.Queue()
    outbox: asyncio.Queue[dict] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    message = await outbox.get()
    if message["type"] == "lifespan.startup.failed":
        await task
        raise StartupError(message.get("message", "startup failed"))
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


@asynccontextmanager
async def client(app: Any, *, base_url: str = "http://testserver", **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Takes a chute, and yields an httpx client that calls it in-process, between startup and shutdown."""
    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url, **options) as http:
            yield http
