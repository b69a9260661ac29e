"""The streaming reverse proxy, between a real client, a real proxy server and real upstreams."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from chutes.protocol import SEND_WHOLE, WRITE_BODY, BoundedHttpToolsProtocol
from chutes.proxy import Proxy
from chutes.proxy.head import build_request_head


class ServerThread:
    """Serves an ASGI app with uvicorn on 127.0.0.1 in a thread of its own."""

    def __init__(
        self,
        app: Any,
        *,
        loop: str = "uvloop",
        keep_alive: float = 5.0,
        proxy_headers: bool = False,
        http: Any = "httptools",
    ) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            loop=loop,
            http=http,
            lifespan="on",
            log_level="critical",
            access_log=False,
            timeout_keep_alive=keep_alive,
            proxy_headers=proxy_headers,
            timeout_graceful_shutdown=0.5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, args=([self.sock],), daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class Upstream:
    """A small upstream app: echoes requests, streams, stalls and dies on demand."""

    def __init__(self) -> None:
        self.clients: list[tuple[str, int]] = []
        self.release = threading.Event()
        self.disconnected = threading.Event()

    @property
    def connections(self) -> int:
        return len(set(self.clients))

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        self.clients.append(tuple(scope["client"]))
        handler = getattr(self, "serve_" + scope["path"].strip("/").replace("-", "_"), None)
        if handler is None:
            await send_bytes(send, 404, b"no such path")
            return
        await handler(scope, receive, send)

    async def serve_echo(self, scope: dict, receive: Callable, send: Callable) -> None:
        body = bytearray()
        messages = 0
        while True:
            message = await receive()
            body += message.get("body", b"")
            messages += 1
            if not message.get("more_body"):
                break
        report = {
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode(),
            "query": scope["query_string"].decode(),
            "headers": [[name.decode(), value.decode()] for name, value in scope["headers"]],
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "body": body[:200].decode("latin-1"),
        }
        extra = [
            (b"x-upstream", b"yes"),
            (b"keep-alive", b"timeout=5"),
            (b"x-private", b"hop"),
            (b"connection", b"x-private"),
        ]
        await send_bytes(send, 201, json.dumps(report).encode(), extra)

    async def serve_chunked(self, scope: dict, receive: Callable, send: Callable) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for index in range(50):
            await send({"type": "http.response.body", "body": b"%d," % index, "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})

    async def serve_sse(self, scope: dict, receive: Callable, send: Callable) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        deadline = time.monotonic() + 5
        while not self.release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    async def serve_big_stream(self, scope: dict, receive: Callable, send: Callable) -> None:
        """BIG_PARTS parts of 16 KiB, chunked, or with a content-length when ?length is asked."""
        headers = [(b"content-length", b"%d" % (BIG_PARTS * 16384))] if scope["query_string"] == b"length" else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index in range(BIG_PARTS):
            await send({"type": "http.response.body", "body": big_part(index), "more_body": True})
            if index % 16 == 0:
                await asyncio.sleep(0)  # the proxy reads it in several parts
        await send({"type": "http.response.body", "body": b""})

    async def serve_slow(self, scope: dict, receive: Callable, send: Callable) -> None:
        await asyncio.sleep(3)
        await send_bytes(send, 200, b"late")

    async def serve_stall(self, scope: dict, receive: Callable, send: Callable) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await asyncio.sleep(3)
        await send({"type": "http.response.body", "body": b"late"})

    async def serve_pause(self, scope: dict, receive: Callable, send: Callable) -> None:
        await asyncio.sleep(0.2)
        await send_bytes(send, 200, b"paused")

    async def serve_nocontent(self, scope: dict, receive: Callable, send: Callable) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def serve_die_length(self, scope: dict, receive: Callable, send: Callable) -> None:
        headers = [(b"content-length", b"1000")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"x" * 100, "more_body": True})
        await asyncio.sleep(0.05)
        raise RuntimeError("upstream dies mid-body")

    async def serve_die_chunked(self, scope: dict, receive: Callable, send: Callable) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.sleep(0.05)
        raise RuntimeError("upstream dies mid-body")

    async def serve_forever(self, scope: dict, receive: Callable, send: Callable) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        deadline = time.monotonic() + 10
        while not gone.is_set() and time.monotonic() < deadline:
            await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
            await asyncio.sleep(0.01)
        watcher.cancel()
        if gone.is_set():
            self.disconnected.set()


BIG_PARTS = 256  # 4 MiB


def big_part(index: int) -> bytes:
    return (b"%08d" % index) * 2048


async def serve_lifespan(receive: Callable, send: Callable, on_shutdown: Any = None) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown is not None:
                await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def send_bytes(
    send: Callable, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def make_proxy_app(proxy: Proxy, port: int, *, direct_writes: bool = False) -> Callable:
    """A proxy server app: /renamed goes upstream as /echo, everything else as it is. With
    `direct_writes`, it passes the server's synchronous body writer and whole-response sender on
    (served by chutes' protocol)."""

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send, proxy.aclose)
            return
        path = "/echo" if scope["path"] == "/renamed" else None
        body = b'{"validated": true}' if scope["path"] == "/validated" else None
        if body is not None:
            path = "/echo"
        await proxy.forward(
            scope,
            receive,
            send,
            host="127.0.0.1",
            port=port,
            path=path,
            body=body,
            extra_headers=[(b"x-gateway", b"1")],
            write_body=scope["extensions"][WRITE_BODY] if direct_writes else None,
            send_whole=scope["extensions"][SEND_WHOLE] if direct_writes else None,
        )

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, int]]:
    app = Upstream()
    with ServerThread(app) as server:
        yield app, server.port


@pytest.fixture
def proxy_factory() -> Iterator[Callable[..., str]]:
    """Starts proxy servers in front of a port; returns their base URL."""
    servers: list[ServerThread] = []

    def start(
        port: int, loop: str = "uvloop", proxy_headers: bool = False, direct_writes: bool = False, **options: float
    ) -> str:
        app = make_proxy_app(Proxy(**options), port, direct_writes=direct_writes)
        http = BoundedHttpToolsProtocol if direct_writes else "httptools"
        server = ServerThread(app, loop=loop, proxy_headers=proxy_headers, http=http)
        servers.append(server.__enter__())
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def header_values(report: dict, name: str) -> list[str]:
    return [value for key, value in report["headers"] if key == name]


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_forwards_method_query_body_and_headers(upstream, proxy_factory, client, loop):
    _, port = upstream
    base = proxy_factory(port, loop=loop)
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        content = b"" if method in ("GET", "DELETE", "OPTIONS") else b'{"a": 1}'
        response = await client.request(
            method,
            base + "/echo?x=1&y=a%20b",
            content=content,
            headers={"x-custom": "kept", "authorization": "Bearer abc"},
        )
        assert response.status_code == 201
        report = response.json()
        assert report["method"] == method
        assert report["path"] == "/echo"
        assert report["query"] == "x=1&y=a%20b"
        assert report["body"] == content.decode()
        assert header_values(report, "x-custom") == ["kept"]
        assert header_values(report, "authorization") == ["Bearer abc"]
        assert header_values(report, "host") == [base.removeprefix("http://")]
        assert header_values(report, "x-forwarded-host") == [base.removeprefix("http://")]
        assert header_values(report, "x-forwarded-proto") == ["http"]
        assert header_values(report, "x-forwarded-for") == ["127.0.0.1"]
        assert header_values(report, "x-gateway") == ["1"]
        assert response.headers["x-upstream"] == "yes"


async def test_path_override_keeps_query_and_encoded_path(upstream, proxy_factory, client):
    _, port = upstream
    base = proxy_factory(port)
    report = (await client.post(base + "/renamed?q=%2F", content=b"hi")).json()
    assert (report["path"], report["query"], report["body"]) == ("/echo", "q=%2F", "hi")
    missing = await client.get(base + "/a%2Fb")
    assert missing.status_code == 404  # the raw path went upstream undecoded


async def test_given_body_is_sent_with_its_own_length(upstream, proxy_factory, client):
    _, port = upstream
    base = proxy_factory(port)
    report = (await client.post(base + "/validated", content=b"ignored original")).json()
    assert report["body"] == '{"validated": true}'
    assert header_values(report, "content-length") == ["19"]


async def test_hop_by_hop_headers_are_stripped_both_ways(upstream, proxy_factory, client):
    _, port = upstream
    base = proxy_factory(port)
    response = await client.get(
        base + "/echo",
        headers={
            "connection": "keep-alive, x-drop-me",
            "x-drop-me": "1",
            "keep-alive": "timeout=5",
            "te": "trailers",
            "proxy-authorization": "Basic abc",
            "x-forwarded-for": "10.0.0.1",
        },
    )
    report = response.json()
    names = {name for name, _ in report["headers"]}
    assert not names & {"connection", "x-drop-me", "keep-alive", "te", "proxy-authorization"}
    assert header_values(report, "x-forwarded-for") == ["10.0.0.1, 127.0.0.1"]
    assert "keep-alive" not in response.headers
    assert "x-private" not in response.headers
    assert len(response.headers.get_list("date")) == 1  # the proxy server's own, not a second one
    assert len(response.headers.get_list("server")) == 1
    assert response.headers["x-upstream"] == "yes"


async def test_forwarded_for_is_not_doubled_when_the_server_trusts_it(upstream, proxy_factory, client):
    _, port = upstream
    base = proxy_factory(port, proxy_headers=True)  # uvicorn then takes the client from X-Forwarded-For
    report = (await client.get(base + "/echo", headers={"x-forwarded-for": "10.0.0.1"})).json()
    assert header_values(report, "x-forwarded-for") == ["10.0.0.1"]


def test_head_builder_drops_upgrade_and_adds_host_when_missing() -> None:
    scope = {
        "method": "GET",
        "path": "/p",
        "raw_path": b"/p",
        "query_string": b"",
        "headers": [(b"upgrade", b"websocket"), (b"proxy-connection", b"x"), (b"x-a", b"1")],
        "client": None,
        "scheme": "https",
    }
    head = build_request_head(scope, host="127.0.0.1", port=9, path=None, extra_headers=None)
    assert head.render(b"") == (
        b"GET /p HTTP/1.1\r\nx-a: 1\r\nhost: 127.0.0.1:9\r\n"
        b"x-forwarded-host: 127.0.0.1:9\r\nx-forwarded-proto: https\r\n\r\n"
    )


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "chunked"])
async def test_large_streamed_request_body(upstream, proxy_factory, client, send_length):
    _, port = upstream
    base = proxy_factory(port)
    block = bytes(range(256)) * 256  # 64 KiB
    total = block * 80  # 5 MiB

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield block

    content = total if send_length else chunks()
    # a header value that reads like framing must not change the framing
    report = (await client.put(base + "/echo", content=content, headers={"x-note": "chunked"})).json()
    assert report["length"] == len(total)
    assert report["sha256"] == hashlib.sha256(total).hexdigest()
    if send_length:
        assert header_values(report, "content-length") == [str(len(total))]
    else:
        assert header_values(report, "transfer-encoding") == ["chunked"]


@pytest.mark.parametrize("direct_writes", [False, True])
async def test_sse_event_arrives_before_upstream_sends_the_next(upstream, proxy_factory, client, direct_writes):
    app, port = upstream
    base = proxy_factory(port, direct_writes=direct_writes)
    async with client.stream("GET", base + "/sse") as response:
        assert response.headers["content-type"] == "text/event-stream"
        chunks = response.aiter_raw()
        first = await asyncio.wait_for(anext(chunks), 3)
        assert first == b"data: 1\n\n"
        assert not app.release.is_set()
        app.release.set()
        rest = b"".join([chunk async for chunk in chunks])
    assert rest == b"data: 2\n\ndata: [DONE]\n\n"


@pytest.mark.parametrize("direct_writes", [False, True])
async def test_content_length_and_chunked_responses(upstream, proxy_factory, client, direct_writes):
    _, port = upstream
    base = proxy_factory(port, direct_writes=direct_writes)
    echoed = await client.get(base + "/echo")
    assert echoed.headers["content-length"] == str(len(echoed.content))
    chunked = await client.get(base + "/chunked")
    assert chunked.headers["transfer-encoding"] == "chunked"
    assert chunked.content == b"".join(b"%d," % i for i in range(50)) + b"end"


@pytest.mark.parametrize("direct_writes", [False, True])
async def test_head_and_204_have_no_body_and_keep_the_connection(upstream, proxy_factory, client, direct_writes):
    app, port = upstream
    base = proxy_factory(port, direct_writes=direct_writes)
    head = await client.head(base + "/echo")
    assert head.status_code == 201 and head.content == b""
    assert int(head.headers["content-length"]) > 0
    empty = await client.get(base + "/nocontent")
    assert empty.status_code == 204 and empty.content == b""
    after = await client.get(base + "/echo")
    assert after.json()["method"] == "GET"
    assert app.connections == 1


@pytest.mark.parametrize("query", ["", "length"])
async def test_large_stream_to_a_slow_reader_arrives_whole_with_direct_writes(upstream, proxy_factory, query):
    """Parts go straight from the upstream's read callback to the client until the client's socket
    is full; then the proxy falls back to awaiting `send`, and nothing is lost, doubled or reordered."""
    _, port = upstream
    base = proxy_factory(port, direct_writes=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
    writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    writer.write(b"GET /big-stream?%s HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n" % query.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    await asyncio.sleep(0.5)  # not reading: the proxy's writes to this client pause
    received = bytearray()
    while chunk := await reader.read(65536):
        received += chunk
    writer.close()
    expected = b"".join(big_part(i) for i in range(BIG_PARTS))
    if query:
        assert b"content-length: %d" % len(expected) in head.lower()
        body = bytes(received)
    else:
        assert b"transfer-encoding: chunked" in head.lower()
        body = dechunk(bytes(received))
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(expected).hexdigest()


@pytest.mark.parametrize("connection", [b"keep-alive", b"close"])
async def test_whole_response_in_one_write_keeps_framing_and_connection_rules(upstream, proxy_factory, connection):
    """A response that arrived whole leaves in one write; a second request on a kept-alive connection
    is answered, and `connection: close` is honoured after the whole answer."""
    _, port = upstream
    base = proxy_factory(port, direct_writes=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
    request = b"GET /echo HTTP/1.1\r\nhost: x\r\nconnection: %s\r\n\r\n" % connection
    writer.write(request + (request if connection == b"keep-alive" else b""))
    answers = 2 if connection == b"keep-alive" else 1
    for _ in range(answers):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 201")
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))[15:])
        assert json.loads(await reader.readexactly(length))["method"] == "GET"
    if connection == b"close":
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after the answer
    writer.close()


def dechunk(data: bytes) -> bytes:
    body, rest = bytearray(), data
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(body)
        body += rest[:size]
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]


async def test_502_when_upstream_is_down(proxy_factory, client):
    port = free_port()
    base = proxy_factory(port)
    response = await client.get(base + "/anything")
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert detail.startswith(f"upstream 127.0.0.1:{port} is not reachable: ")
    assert "refused" in detail.lower()


async def test_unreachable_upstream_is_503_with_retry_after_for_a_gateway(proxy_factory, client):
    base = proxy_factory(free_port(), unreachable_retry_after=1)
    response = await client.get(base + "/anything")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "is not reachable" in response.json()["detail"]


async def test_504_when_upstream_sends_no_headers_in_time(upstream, proxy_factory, client):
    _, port = upstream
    base = proxy_factory(port, read_timeout=0.3)
    started = time.monotonic()
    response = await client.get(base + "/slow")
    assert response.status_code == 504
    assert time.monotonic() - started < 2.5
    assert response.json() == {"detail": f"upstream 127.0.0.1:{port} did not respond within 0.3 s"}


async def test_upstream_stalling_mid_body_aborts_after_read_timeout(upstream, proxy_factory, client):
    _, port = upstream
    base = proxy_factory(port, read_timeout=0.3)
    started = time.monotonic()
    async with client.stream("GET", base + "/stall") as response:
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"first"
        with pytest.raises(httpx.RemoteProtocolError):
            await anext(chunks)
    assert time.monotonic() - started < 2.5


async def test_keep_alive_connections_are_reused(upstream, proxy_factory, client):
    app, port = upstream
    base = proxy_factory(port)
    for _ in range(5):
        assert (await client.post(base + "/echo", content=b"x")).status_code == 201
    assert len(app.clients) == 5
    assert app.connections == 1
    await asyncio.gather(*(client.get(base + "/sse") for _ in range(3)), release(app))
    assert 1 < app.connections <= 4


async def test_idle_connections_beyond_the_limit_are_closed(upstream, proxy_factory, client):
    app, port = upstream
    base = proxy_factory(port, max_idle_per_upstream=1)
    await asyncio.gather(*(client.get(base + "/pause") for _ in range(3)))
    assert app.connections == 3
    await asyncio.gather(*(client.get(base + "/pause") for _ in range(2)))
    assert app.connections == 4  # one kept idle and reused, one opened anew


async def release(app: Upstream) -> None:
    await asyncio.sleep(0.2)
    app.release.set()


async def test_upstream_closed_idle_connection_is_not_reused(proxy_factory, client):
    app = Upstream()
    with ServerThread(app, keep_alive=0.1) as server:
        base = proxy_factory(server.port)
        assert (await client.get(base + "/echo")).status_code == 201
        await asyncio.sleep(0.4)
        assert (await client.get(base + "/echo")).status_code == 201
    assert app.connections == 2


@pytest.mark.parametrize("path", ["/die-length", "/die-chunked"])
async def test_upstream_dying_mid_body_is_an_error_not_a_short_success(upstream, proxy_factory, client, path):
    _, port = upstream
    base = proxy_factory(port)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get(base + path)
    assert (await client.get(base + "/echo")).status_code == 201


async def test_client_disconnect_closes_the_upstream_connection(upstream, proxy_factory):
    app, port = upstream
    base = proxy_factory(port)
    async with httpx.AsyncClient(timeout=5) as client:
        async with client.stream("GET", base + "/forever") as response:
            chunks = response.aiter_raw()
            assert (await anext(chunks)).startswith(b"tick")
    assert await asyncio.to_thread(app.disconnected.wait, 3)


class RawUpstream:
    """A raw TCP server on 127.0.0.1 whose connections are served by `handle(reader, writer)`,
    for upstream behaviour uvicorn never shows."""

    def __init__(self, handle: Callable) -> None:
        self.handle = handle
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> RawUpstream:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop)
        self.server = future.result(5)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            await self.handle(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def __exit__(self, *exc_info: object) -> None:
        async def stop() -> None:
            self.server.close()
            for writer in self.writers:
                writer.close()
            await self.server.wait_closed()
            await asyncio.sleep(0.05)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next((int(line[15:]) for line in lines if line.startswith(b"content-length:")), 0)
    return head + await reader.readexactly(length)


async def answer_once_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers the first request, then closes on the next without answering: the race a pool meets
    when an upstream drops an idle keep-alive connection just as the proxy reuses it."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")


def answering(response: bytes) -> Callable:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response)
        await writer.drain()

    return handle


async def test_body_delimited_by_close_is_relayed_whole(proxy_factory, client):
    with RawUpstream(answering(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end")) as upstream:
        response = await client.get(proxy_factory(upstream.port) + "/x")
    assert (response.status_code, response.text) == (200, "until the end")


async def test_interim_responses_are_skipped(proxy_factory, client):
    interim = b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n"
    with RawUpstream(answering(interim + b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")) as upstream:
        response = await client.get(proxy_factory(upstream.port) + "/x")
    assert (response.status_code, response.text) == (200, "ok")
    assert "link" not in response.headers


async def test_invalid_upstream_response_is_a_502(proxy_factory, client):
    with RawUpstream(answering(b"SPDY/9 what\r\n\r\n")) as upstream:
        response = await client.get(proxy_factory(upstream.port) + "/x")
    assert response.status_code == 502
    assert response.json()["detail"].startswith(f"upstream 127.0.0.1:{upstream.port} sent an invalid HTTP response")


async def test_stale_pooled_connection_is_retried_once_on_a_fresh_one(proxy_factory, client):
    with RawUpstream(answer_once_then_drop) as upstream:
        base = proxy_factory(upstream.port)
        for _ in range(3):
            response = await client.post(base + "/x", content=b"abc")
            assert (response.status_code, response.text) == (200, "ok")
        assert upstream.connections == 3


async def test_stale_connection_is_not_retried_after_body_bytes_were_streamed(proxy_factory, client):
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 1000
            await asyncio.sleep(0.01)

    with RawUpstream(answer_once_then_drop) as upstream:
        base = proxy_factory(upstream.port)
        assert (await client.get(base + "/x")).status_code == 200
        response = await client.post(base + "/x", content=chunks())
        assert response.status_code == 502
        assert "closed the connection" in response.json()["detail"]
        assert upstream.connections == 1


def test_one_proxy_serves_successive_event_loops(upstream) -> None:
    app, port = upstream
    proxy = Proxy()
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "headers": [(b"host", b"example")],
        "client": ("127.0.0.1", 1),
        "scheme": "http",
    }

    async def call() -> list[dict]:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        for _ in range(2):
            await proxy.forward(scope, receive, send, host="127.0.0.1", port=port)
        await proxy.aclose()  # as a lifespan shutdown does
        return sent

    for _ in range(2):
        sent = asyncio.run(call())
        assert [message.get("status") for message in sent[::2]] == [201, 201]
        assert json.loads(sent[-1]["body"])["path"] == "/echo"
    assert app.connections == 2
