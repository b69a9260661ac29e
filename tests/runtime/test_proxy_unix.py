"""The proxy forwards to an upstream on a Unix socket (how the host reaches its instances)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from chutes.proxy import Proxy


async def upstream(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for part in (b"echo:", body):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def unix_upstream(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "up.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    server = uvicorn.Server(uvicorn.Config(upstream, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "upstream did not start"
        time.sleep(0.01)
    yield path
    server.should_exit = True
    thread.join(10)
    sock.close()


def front(proxy: Proxy, uds: str):
    """Returns an ASGI app that forwards every request to uds, closing the proxy's pool on shutdown."""

    async def app(scope, receive, send) -> None:
        if scope["type"] == "http":
            await proxy.forward(scope, receive, send, host="localhost", port=0, uds=uds)
        elif scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await proxy.aclose()
            await send({"type": "lifespan.shutdown.complete"})

    return app


def test_forwards_and_reuses_the_connection(unix_upstream: str, live_server) -> None:
    proxy = Proxy()
    url = live_server(front(proxy, unix_upstream))
    with httpx.Client(timeout=10) as client:
        for n in range(3):
            resp = client.post(url + "/x", content=b"hello %d" % n)
            assert resp.status_code == 200
            assert resp.text == f"echo:hello {n}"
    assert "idle=1" in repr(proxy)


def test_a_missing_socket_is_502_without_its_path(tmp_path: Path, live_server) -> None:
    missing = str(tmp_path / "secret-dir" / "gone.sock")
    url = live_server(front(Proxy(), missing))
    resp = httpx.get(url + "/", timeout=10)
    assert resp.status_code == 502
    assert "secret-dir" not in resp.text
    assert resp.json()["detail"].startswith("upstream instance:socket is not reachable")
