"""Reading request bodies within a size limit."""

from __future__ import annotations

from starlette.exceptions import HTTPException

from chutes.exceptions import ClientDisconnected
from chutes.types import Receive

DEFAULT_MAX_BODY_SIZE = 100 * 1024 * 1024


def too_large(limit: int) -> HTTPException:
    return HTTPException(
        413,
        f"request body is larger than this chute's limit of {limit} bytes; "
        "send a smaller body (or raise max_body_size on the Chute)",
    )


async def read_body(receive: Receive, limit: int) -> bytes:
    """Takes a request's receive, and returns its whole body; 413 as soon as it passes `limit` bytes."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise too_large(limit)
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
