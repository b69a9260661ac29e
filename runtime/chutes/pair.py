"""One path served by a streaming and a non-streaming cord: the body's "stream" flag picks one."""

from __future__ import annotations

import json

from chutes.endpoint import Endpoint
from chutes.types import Receive, Scope, Send


class PairEndpoint(Endpoint):
    """The endpoint of a path served by a streaming and a non-streaming cord, chosen per request."""

    __slots__ = ()


def make_stream_pair(plain: Endpoint, streaming: Endpoint) -> PairEndpoint:
    """Takes the two endpoints of one path, and returns one that reads the body once and hands it on.

    `{"stream": true}` goes to the streaming cord; anything else, including a body that is not
    JSON, goes to the other, which answers it (or refuses it) as it would alone.
    """

    async def run(scope: Scope, receive: Receive, send: Send, body: bytes | None) -> int:
        chosen = streaming if body is not None and wants_stream(body) else plain
        return await chosen.run(scope, receive, send, body)

    return PairEndpoint(plain.read, run)


def wants_stream(body: bytes) -> bool:
    """Returns whether a JSON object body says `"stream": true`."""
    if b'"stream"' not in body:
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("stream") is True
