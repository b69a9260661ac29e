"""Streaming cord results: framing items as SSE, JSON lines or raw chunks, as they are made."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any

import anyio
from pydantic_core import to_json

from chutes.responses import describe_error
from chutes.types import Receive, Send

if TYPE_CHECKING:
    from chutes.cord import Cord

SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
NO_ITEM = object()


def frame_sse(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    return b"data: " + to_json(item, inf_nan_mode="null") + b"\n\n"


def frame_line(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    return to_json(item, inf_nan_mode="null") + b"\n"


def framing_for(cord: Cord) -> tuple[str, Callable[[Any], bytes]]:
    """Takes a streaming cord, and returns its media type and how each item becomes bytes."""
    media_type = cord.output_content_type or SSE
    if media_type.startswith(SSE):
        return media_type, frame_sse
    return media_type, frame_line


async def send_stream(cord: Cord, items: AsyncGenerator, first: Any, receive: Receive, send: Send, *, dev: bool) -> int:
    """Sends `first` and then every further item as it is made; stops early if the client goes."""
    media_type, frame = framing_for(cord)
    is_sse = frame is frame_sse
    headers = [(b"content-type", media_type.encode()), (b"cache-control", b"no-cache")]
    if is_sse:
        headers.append((b"x-accel-buffering", b"no"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    finished = False

    async def pump() -> None:
        nonlocal finished
        if first is not NO_ITEM:
            await send({"type": "http.response.body", "body": frame(first), "more_body": True})
        try:
            async for item in items:
                await send({"type": "http.response.body", "body": frame(item), "more_body": True})
        except Exception as exc:
            if not is_sse:
                raise  # an abrupt close is the only honest end of a non-SSE stream
            await send(
                {
                    "type": "http.response.body",
                    "body": error_frame(exc, cord, dev),
                    "more_body": True,
                }
            )
        finished = True

    try:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                await pump()
            finally:
                group.cancel_scope.cancel()
    finally:
        # close the generator now, not at garbage collection: its finally blocks free GPUs and sockets
        await items.aclose()
    # the end goes out only once the generator is closed: a client that saw it may call again at once,
    # and must find the chute's concurrency slot free
    if finished:
        await send({"type": "http.response.body", "body": b""})
    return 200


def error_frame(exc: Exception, cord: Cord, dev: bool) -> bytes:
    status, payload, _ = describe_error(exc, cord.where, dev=dev)
    return b"event: error\ndata: " + to_json({**payload, "status": status}, fallback=str) + b"\n\n"
