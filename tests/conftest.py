"""Shared fixtures: real uvicorn servers on 127.0.0.1 and free ports."""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(app: Any, **options: Any) -> Iterator[str]:
    """Serves an ASGI app with a real uvicorn on a free 127.0.0.1 port; yields its base URL."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options.setdefault("log_level", "warning")
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture
def live_server() -> Iterator[Callable[..., str]]:
    """A factory: live_server(app) starts the app on uvicorn and returns its URL; stopped after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda app, **options: stack.enter_context(serve(app, **options))


@pytest.fixture(scope="session")
def engine() -> Iterator[object]:
    """A docker client for $DOCKER_HOST; skips without an engine, but fails under CI."""
    import docker

    reason = None
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as exc:
        reason = f"no container engine answers at DOCKER_HOST={os.environ.get('DOCKER_HOST', '(unset)')}: {exc}"
    if reason is not None:
        with warnings.catch_warnings():  # docker-py leaks the socket of a failed connect; close it quietly
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so engine tests must run: start it with `bash .ci/engine.sh`)")
        pytest.skip(reason)
    yield client
    client.close()


ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def assert_page_works_offline(page: str, get: Callable[[str], Any]) -> list[str]:
    """Checks that an HTML page loads only URLs of its own server, each served 200 with its type.

    `get(url)` fetches a URL of that server; returns the URLs the page references.
    """
    import re

    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert refs, "the page references no script or style"
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), f"{ref} is not served by this server"
        resp = get(ref)
        assert resp.status_code == 200, f"{ref}: {resp.status_code}"
        suffix = ref[ref.rfind(".") :]
        assert resp.headers["content-type"].startswith(ASSET_TYPES[suffix]), (ref, resp.headers["content-type"])
        assert len(resp.content) > 100
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert not any(re.search(r"https?://|//[a-z]", s) for s in scripts), "an inline script loads an outside URL"
    assert '"validatorUrl": null' in page, "Swagger UI would send the document's URL to its outside validator"
    return refs
