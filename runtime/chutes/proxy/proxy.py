"""`Proxy`: forwards one ASGI HTTP request to an upstream and streams the response back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AbstractContextManager
from typing import Any

from chutes.proxy.connection import UpstreamConnection
from chutes.proxy.errors import ClientDisconnected, UpstreamError, translating_errors
from chutes.proxy.head import build_request_head
from chutes.proxy.pool import ConnectionPool

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# Bodies up to this size go out in the same write as the head.
COALESCE_LIMIT = 64 * 1024


class Proxy:
    """Forwards ASGI HTTP requests to an upstream HTTP/1.1 server, streaming both ways.

    proxy = Proxy(read_timeout=60)
    await proxy.forward(scope, receive, send, host="127.0.0.1", port=8000, path="/v1/chat")
    await proxy.aclose()
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        max_idle_per_upstream: int = 64,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._pool = ConnectionPool(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_idle=max_idle_per_upstream,
        )

    def __repr__(self) -> str:
        return (
            f"Proxy(connect_timeout={self.connect_timeout:g}, read_timeout={self.read_timeout:g}, pool={self._pool!r})"
        )

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
    ) -> None:
        """Sends the request to host:port, and relays the response (or a 502/504) to `send`."""
        head = build_request_head(scope, host=host, port=port, path=path, extra_headers=extra_headers)
        first = b""
        streamed = False
        if body is None and head.has_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            first = message.get("body", b"")
            if message.get("more_body", False):
                streamed = True
            else:
                body = first
        if streamed:
            framing = (
                b"content-length: " + head.content_length + b"\r\n"
                if head.content_length is not None
                else b"transfer-encoding: chunked\r\n"
            )
            request = head.render(framing)
        elif body is not None:
            request = head.render(b"content-length: %d\r\n" % len(body))
            if len(body) <= COALESCE_LIMIT:
                request, body = request + body, None
        else:
            request = head.render(b"")
        exchange = _Exchange(self._pool, host, port, scope["method"] == "HEAD", self.read_timeout)
        started = False
        try:
            await exchange.open(request, body, first if streamed else None, receive)
            conn = exchange.conn
            await send({"type": "http.response.start", "status": conn.status, "headers": conn.headers})
            started = True
            await exchange.relay(receive, send)
        except ClientDisconnected:
            exchange.abort()
            return
        except UpstreamError as exc:
            exchange.abort()
            if started:
                raise  # the server drops the client connection: never a truncated success
            if exchange.body_pending:
                await drain_request_body(receive)  # else the client's unsent body resets the socket
            await send_error(send, exc)
            return
        except BaseException:
            exchange.abort()
            raise
        self._pool.release(exchange.conn, host, port)

    async def aclose(self) -> None:
        """Closes the pooled idle connections."""
        self._pool.close()


class _Exchange:
    """One request/response over a pooled connection, retried once on a stale one."""

    __slots__ = ("pool", "host", "port", "head_request", "read_timeout", "conn", "body_pending")

    def __init__(self, pool: ConnectionPool, host: str, port: int, head_request: bool, read_timeout: float) -> None:
        self.pool = pool
        self.host = host
        self.port = port
        self.head_request = head_request
        self.read_timeout = read_timeout
        self.conn: UpstreamConnection | None = None
        self.body_pending = False

    def _translating(self, *, connecting: bool) -> AbstractContextManager[None]:
        timeout = self.pool._connect_timeout if connecting else self.read_timeout
        return translating_errors(self.host, self.port, connecting=connecting, timeout=timeout)

    async def open(self, request: bytes, body: bytes | None, first: bytes | None, receive: Receive) -> None:
        """Sends the request and waits for the response headers; `first` set means streaming."""
        with self._translating(connecting=True):
            self.conn = await self.pool.acquire(self.host, self.port)
        with self._translating(connecting=False):
            try:
                await self._send_request(request, body, first, receive)
            except OSError as exc:
                conn = self.conn
                stale = conn.reused and not conn.received_any and first is None
                if isinstance(exc, TimeoutError) or not stale:
                    raise
                conn.close()
                with self._translating(connecting=True):
                    self.conn = await self.pool.connect(self.host, self.port)
                await self._send_request(request, body, first, receive)

    async def _send_request(self, request: bytes, body: bytes | None, first: bytes | None, receive: Receive) -> None:
        conn = self.conn
        conn.begin(head_request=self.head_request)
        conn.write(request)
        if body is not None:
            conn.write(body)
        elif first is not None:
            await self._stream_request_body(first, receive, chunked=b"chunked\r\n" in request)
        conn.start_timer()
        while not conn.headers_done:
            if conn.error is not None:
                raise conn.error
            await conn.wait()

    async def _stream_request_body(self, data: bytes, receive: Receive, *, chunked: bool) -> None:
        conn = self.conn
        more = self.body_pending = True
        while True:
            if data:
                conn.write(b"".join((b"%x\r\n" % len(data), data, b"\r\n")) if chunked else data)
            if not more:
                self.body_pending = False
                if chunked:
                    conn.write(b"0\r\n\r\n")
                return
            if conn.write_paused:
                await conn.drain()
            if conn.error is not None:
                raise conn.error
            if conn.headers_done:
                conn.spoiled = True  # answered before the whole body was sent: not reusable
                return
            message = await receive()
            if message["type"] == "http.disconnect":
                self.body_pending = False
                raise ClientDisconnected()
            data = message.get("body", b"")
            more = message.get("more_body", False)

    async def relay(self, receive: Receive, send: Send) -> None:
        """Sends each body chunk to the client as it arrives, then ends the response."""
        conn = self.conn
        watcher = None
        data = b""
        try:
            with self._translating(connecting=False):
                while True:
                    if conn.chunks:
                        data = conn.take()
                        if conn.complete:
                            break
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                        data = b""
                    elif conn.complete:
                        break
                    elif conn.error is not None:
                        raise conn.error
                    else:
                        if watcher is None:
                            watcher = asyncio.get_running_loop().create_task(watch_disconnect(receive, conn))
                        await conn.wait()
        finally:
            if watcher is not None:
                watcher.cancel()
        await send({"type": "http.response.body", "body": data, "more_body": False})

    def abort(self) -> None:
        if self.conn is not None:
            self.conn.close()


async def watch_disconnect(receive: Receive, conn: UpstreamConnection) -> None:
    """Closes the upstream connection as soon as the client disconnects."""
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:  # a server that cannot report disconnects: nothing to watch
        return
    conn.fail(ClientDisconnected())


async def drain_request_body(receive: Receive) -> None:
    """Reads and discards the rest of the client's request body."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return


async def send_error(send: Send, exc: UpstreamError) -> None:
    """Sends the JSON error response for an upstream failure."""
    body = json.dumps({"detail": exc.detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
