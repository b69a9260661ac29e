"""The same three endpoints as one bare ASGI callable: the floor any framework adds to."""

from __future__ import annotations

import json

from payloads import STREAM_EVENTS, describe, event, greet

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def read_body(receive) -> bytes:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def send_json(send, status: int, content) -> None:
    body = json.dumps(content).encode()
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    data = json.loads(await read_body(receive))
    path = scope["path"]
    if path == "/hello":
        await send_json(send, 200, greet(data["name"]))
    elif path == "/person":
        await send_json(send, 200, describe(data["name"], data["age"]))
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        for index in range(STREAM_EVENTS):
            frame = f"data: {json.dumps(event(data['prompt'], index))}\n\n".encode()
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send_json(send, 404, {"detail": "not found"})
