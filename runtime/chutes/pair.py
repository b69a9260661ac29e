"""One path served by a streaming and a non-streaming cord: the body's "stream" flag picks one."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from chutes.body import ClientDisconnect, read_body
from chutes.responses import send_error

if TYPE_CHECKING:
    from chutes.chute import Chute

Endpoint = Callable[[dict, Callable, Callable], Awaitable[int]]
CLIENT_CLOSED = 499


def make_stream_pair(chute: Chute, plain: Endpoint, streaming: Endpoint) -> Endpoint:
    """Takes the two endpoints of one path, and returns one that reads the body once and hands it on.

    `{"stream": true}` goes to the streaming cord; anything else, including a body that is not
    JSON, goes to the other, which answers it (or refuses it) as it would alone.
    """

    async def endpoint(scope, receive, send) -> int:
        try:
            body = await read_body(receive, chute.max_body_size)
        except ClientDisconnect:
            return CLIENT_CLOSED
        except Exception as exc:
            return await send_error(send, exc, f"chute '{chute.name}'", dev=chute.dev)
        chosen = streaming if wants_stream(body) else plain
        return await chosen(scope, replay(body, receive), send)

    return endpoint


def wants_stream(body: bytes) -> bool:
    """Returns whether a JSON object body says `"stream": true`."""
    if b'"stream"' not in body:
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("stream") is True


def replay(body: bytes, receive: Callable) -> Callable:
    """Takes a body already read, and returns a receive that gives it once, then waits on the client."""
    sent = False

    async def replaying() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replaying
