"""`Proxy`: forwards one ASGI HTTP request to an upstream and streams the response back."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import httptools

from chutes.proxy.errors import ClientDisconnected, UpstreamError, UpstreamUnreachable, translate_error
from chutes.proxy.exchange import Exchange
from chutes.proxy.head import build_request_head
from chutes.proxy.pool import ConnectionPool
from chutes.types import Receive, Scope, Send

# Bodies up to this size go out in the same write as the head.
COALESCE_LIMIT = 64 * 1024
FOREIGN_ERRORS = (OSError, httptools.HttpParserError, UpstreamError)


class Proxy:
    """Forwards ASGI HTTP requests to an upstream HTTP/1.1 server, streaming both ways.

    proxy = Proxy(read_timeout=60)
    await proxy.forward(scope, receive, send, host="127.0.0.1", port=8000, path="/v1/chat")
    await proxy.forward(scope, receive, send, host="localhost", port=0, uds="/run/chute.sock")
    await proxy.aclose()
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        max_idle_per_upstream: int = 64,
        unreachable_retry_after: int | None = None,
    ) -> None:
        """`unreachable_retry_after` set answers an unreachable upstream 503 with that Retry-After, not
        502: for a gateway, whose upstream is an instance that may just have died and is restarting."""
        self.connect_timeout = connect_timeout
        self.unreachable_retry_after = unreachable_retry_after
        self.read_timeout = read_timeout
        self._pool = ConnectionPool(
            connect_timeout=connect_timeout, read_timeout=read_timeout, max_idle=max_idle_per_upstream
        )

    def __repr__(self) -> str:
        return (
            f"Proxy(connect_timeout={self.connect_timeout:g}, read_timeout={self.read_timeout:g}, pool={self._pool!r})"
        )

    @property
    def pool(self) -> ConnectionPool:
        """The pool of idle upstream connections, keyed by (host, port), or (socket path, 0)."""
        return self._pool

    async def forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        host: str,
        port: int,
        path: str | None = None,
        body: bytes | None = None,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
        uds: str | None = None,
        write_body: Callable[[bytes], bool] | None = None,
        send_whole: Callable[[dict, dict], Awaitable[None]] | None = None,
    ) -> None:
        """Sends the request to host:port (or the Unix socket `uds`), and relays the response (or a 502/504).

        `write_body` is the server's synchronous body writer (chutes.protocol.WRITE_BODY), for a caller
        whose `send` passes the body on unchanged; `send_whole(start, body)` likewise sends a response
        that arrived whole in one write (chutes.protocol.SEND_WHOLE)."""
        head = build_request_head(scope, host=host, port=port, path=path, extra_headers=extra_headers)
        if uds is not None:
            host, port = uds, 0
        first = None
        chunked = False
        if body is None and head.has_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if message.get("more_body", False):
                first = message.get("body", b"")
            else:
                body = message.get("body", b"")
        if first is not None:
            length = head.content_length
            chunked = length is None
            framing = b"transfer-encoding: chunked\r\n" if length is None else b"content-length: " + length + b"\r\n"
            request = head.render(framing)
        elif body is not None:
            request = head.render(b"content-length: %d\r\n" % len(body))
            if len(body) <= COALESCE_LIMIT:
                request, body = request + body, None
        else:
            request = head.render(b"")
        exchange = Exchange(self._pool, host, port, scope["method"] == "HEAD")
        started = False
        try:
            conn = await exchange.open(request, body, first, receive, chunked=chunked)
            start = {"type": "http.response.start", "status": conn.status, "headers": conn.headers}
            if send_whole is not None and conn.complete:  # e.g. a JSON answer: head and body leave together
                started = True
                await send_whole(start, {"type": "http.response.body", "body": conn.take(), "more_body": False})
            else:
                await send(start)
                started = True
                await exchange.relay(conn, receive, send, write_body)
        except BaseException as exc:
            exchange.abort()
            if not isinstance(exc, FOREIGN_ERRORS):
                if isinstance(exc, ClientDisconnected):
                    return
                raise
            timeout = self.connect_timeout if exchange.connecting else self.read_timeout
            error = translate_error(exc, host, port, connecting=exchange.connecting, timeout=timeout)
            if started:  # the server drops the client connection: never a truncated success
                if error is exc:
                    raise
                raise error from exc
            if exchange.body_pending:
                await drain_request_body(receive)  # else the client's unsent body resets the socket
            await send_error(send, error, retry_after=self.unreachable_retry_after)
            return
        self._pool.release(conn, host, port)

    async def aclose(self) -> None:
        """Closes the pooled idle connections."""
        self._pool.close()


async def drain_request_body(receive: Receive) -> None:
    """Reads and discards the rest of the client's request body."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return


def error_response(exc: UpstreamError, *, retry_after: int | None = None) -> tuple[int, list, bytes]:
    """Returns the status, headers and JSON body that answer an upstream failure (503 + Retry-After for
    an unreachable one when `retry_after` is set)."""
    body = json.dumps({"detail": exc.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode("ascii"))]
    status = exc.status
    if retry_after is not None and isinstance(exc, UpstreamUnreachable):
        status = 503
        headers.append((b"retry-after", str(retry_after).encode("ascii")))
    return status, headers, body


async def send_error(send: Send, exc: UpstreamError, *, retry_after: int | None = None) -> None:
    """Sends the JSON error response for an upstream failure (see `error_response`)."""
    status, headers, body = error_response(exc, retry_after=retry_after)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
