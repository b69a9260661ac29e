"""The per-cord request handler, built once per cord: read, bind, call, answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NamedTuple

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request

from chutes.body import read_body, too_large
from chutes.cord import is_generator
from chutes.exceptions import ClientDisconnected
from chutes.invocation import first_item, iterate
from chutes.responses import send_error, send_result
from chutes.streaming import send_stream
from chutes.types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from chutes.chute import Chute
    from chutes.cord import Cord

CLIENT_CLOSED = 499
BUFFERED_PASSTHROUGH = 1024 * 1024
Reader = Callable[[Scope, Receive], Awaitable[bytes | None]]
Runner = Callable[[Scope, Receive, Send, "bytes | None"], Awaitable[int]]


class Endpoint(NamedTuple):
    """A cord's two phases: `read` takes the whole body (None when the cord streams it), `run` answers.

    The chute counts a request against its concurrency only from `run` on, so a client that sends
    its body slowly holds no slot while it does.
    """

    read: Reader
    run: Runner


async def no_body(scope: Scope, receive: Receive) -> None:
    return None


def make_endpoint(chute: Chute, cord: Cord) -> Endpoint:
    """Takes a chute and one of its cords, and returns its Endpoint; `run` returns the status it sent."""
    if cord.passthrough:
        return make_passthrough_endpoint(chute, cord)
    binding = cord.binding
    if TYPE_CHECKING:  # only a passthrough cord can have no binding
        assert binding is not None
    if binding.kind == "fastapi":
        return make_bridged_endpoint(chute, cord)
    fn = cord.fn
    checks_json = binding.kind != "raw"
    request_param = binding.request_param
    is_async = cord.is_async
    yields = cord.stream and is_generator(fn)  # else a stream=True cord returns its StreamingResponse
    location = binding.location

    async def read(scope: Scope, receive: Receive) -> bytes:
        return await read_checked_body(scope, receive, chute.max_body_size, checks_json)

    def bind(scope: Scope, receive: Receive, body: bytes) -> dict:
        """The function's arguments from the body and query, and the Request if it asks for one."""
        kwargs = binding.bind(body, scope["query_string"])
        if request_param is not None:
            request = Request(scope, receive)
            request._body = body
            kwargs[request_param] = request
        return kwargs

    async def run(scope: Scope, receive: Receive, send: Send, body: bytes | None) -> int:
        try:
            kwargs = bind(scope, receive, body or b"")
            if is_async:
                result = await fn(chute, **kwargs)
            else:
                result = await run_in_threadpool(fn, chute, **kwargs)
        except ClientDisconnected:
            return CLIENT_CLOSED
        except Exception as exc:
            return await send_error(send, exc, cord.where, location=location, dev=chute.dev)
        return await send_result(result, cord, scope, receive, send)

    async def run_stream(scope: Scope, receive: Receive, send: Send, body: bytes | None) -> int:
        try:
            kwargs = bind(scope, receive, body or b"")
            items = iterate(fn, chute, kwargs, is_async)
            first = await first_item(items)
        except ClientDisconnected:
            return CLIENT_CLOSED
        except Exception as exc:
            return await send_error(send, exc, cord.where, location=location, dev=chute.dev)
        return await send_stream(cord, items, first, receive, send, dev=chute.dev)

    return Endpoint(no_body if binding.from_query else read, run_stream if yields else run)


async def read_checked_body(scope: Scope, receive: Receive, limit: int, checks_json: bool) -> bytes:
    """Takes a request, and returns its body; 413 over the limit, 415 for a body that is not JSON."""
    length = None
    content_type = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = value
        elif name == b"content-type":
            content_type = value
    check_declared_length(length, limit)
    body = await read_body(receive, limit)
    if checks_json and body and content_type is not None and not is_json(content_type):
        raise HTTPException(
            415,
            f"this cord takes a JSON object, but the body was sent as {content_type.decode('latin-1')!r}; "
            "send it with 'Content-Type: application/json'",
        )
    return body


def check_declared_length(length: bytes | None, limit: int) -> None:
    """Refuses a request by its Content-Length: 400 when it is not a number, 413 when it is over `limit`."""
    if length is None:
        return
    if not length.isdigit():
        raise HTTPException(400, "Content-Length header must be a whole number of bytes")
    if int(length) > limit:
        raise too_large(limit)


def is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or media_type.endswith(b"+json")


def capture_status(send: Callable) -> tuple[Callable, list[int]]:
    """Takes an ASGI send, and returns one that records the response status into the list."""
    status = [0]

    async def capturing_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        await send(message)

    return capturing_send, status


def make_bridged_endpoint(chute: Chute, cord: Cord) -> Endpoint:
    async def read(scope: Scope, receive: Receive) -> bytes:
        # read here, within max_body_size, so FastAPI never spools an oversized upload to disk
        return await read_checked_body(scope, receive, chute.max_body_size, False)

    async def run(scope: Scope, receive: Receive, send: Send, body: bytes | None) -> int:
        app = chute.bridge_app()
        capturing_send, status = capture_status(send)
        try:
            await app(scope, replay_body(body or b"", receive), capturing_send)
        except Exception:  # already answered and logged by the bridge's error handler
            if not status[0]:
                raise
        return status[0]

    return Endpoint(read, run)


def replay_body(body: bytes, receive: Callable) -> Callable:
    """Returns a receive that gives the already read `body` once, then passes on to `receive`."""
    sent = False

    async def replayed() -> dict:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def make_passthrough_endpoint(chute: Chute, cord: Cord) -> Endpoint:
    binding = cord.binding
    reads_body = binding is not None and not binding.from_query

    async def read(scope: Scope, receive: Receive) -> bytes:
        return await read_checked_body(scope, receive, chute.max_body_size, True)

    async def read_if_small(scope: Scope, receive: Receive) -> bytes | None:
        # a body of known, small size is read before the request takes a slot (as for every other
        # cord); a larger or chunked one streams through while it holds one
        length = next((v for n, v in scope["headers"] if n == b"content-length"), None)
        if length is None or not length.isdigit() or int(length) > min(BUFFERED_PASSTHROUGH, chute.max_body_size):
            return None
        return await read_checked_body(scope, receive, chute.max_body_size, False)

    async def run(scope: Scope, receive: Receive, send: Send, body: bytes | None) -> int:
        exceeded = [False]
        try:
            if binding is not None:
                binding.bind(body or b"", scope["query_string"])
            elif body is None:
                receive = limit_receive(scope, receive, chute.max_body_size, exceeded)
        except ClientDisconnected:
            return CLIENT_CLOSED
        except Exception as exc:
            location = binding.location if binding else "body"
            return await send_error(send, exc, cord.where, location=location, dev=chute.dev)
        capturing_send, status = capture_status(send)
        extra = None
        if chute.passthrough_headers:  # the chute's own headers replace any the client sent by those names
            extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in chute.passthrough_headers.items()]
            names = {name for name, _ in extra}
            scope = dict(scope, headers=[h for h in scope["headers"] if h[0] not in names])
        await chute.proxy().forward(
            scope, receive, capturing_send,
            host="127.0.0.1", port=cord.passthrough_port, path=cord.passthrough_path, body=body, extra_headers=extra,
        )  # fmt: skip
        if not status[0] and exceeded[0]:  # the upload was cut at the limit before any answer
            return await send_error(send, too_large(chute.max_body_size), cord.where)
        return status[0]

    return Endpoint(read if reads_body else no_body if binding is not None else read_if_small, run)


def limit_receive(scope: Scope, receive: Callable, limit: int, exceeded: list[bool]) -> Callable:
    """Takes a request, and returns a receive that ends it as a disconnect once it passes `limit` bytes.

    `exceeded[0]` becomes True when that happens, so the caller can answer 413.
    """
    check_declared_length(next((v for n, v in scope["headers"] if n == b"content-length"), None), limit)
    seen = 0

    async def limited() -> dict:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            exceeded[0] = True
            return {"type": "http.disconnect"}
        return message

    return limited
