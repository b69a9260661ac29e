"""Hostile clients (huge heads, slow heads and bodies, anonymous big bodies) against a real runtime and a
real host, while a well-behaved client keeps calling: refused with the right status, victim served."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import UploadFile

from chutes.chute import Chute
from chutes.protocol import BoundedHttpToolsProtocol, server_options
from chutes.proxy import Proxy
from chutes.serve import build_config
from tests.host.bundles import file_member, hello_bundle, hello_manifest, make_tar
from tests.host.conftest import FIXTURES, Host, wait_for

BIG_HEADER = b"x-big: " + b"a" * (1024 * 1024) + b"\r\n"


class QuickHeads(BoundedHttpToolsProtocol):
    head_timeout = 1.0


class QuickBodies(BoundedHttpToolsProtocol):
    body_timeout = 0.5


def victim_chute() -> Chute:
    chute = Chute(username="tests", name="victim", image="tests/victim", concurrency=2, max_body_size=1024 * 1024)

    @chute.cord(public_api_path="/echo")
    async def echo(self, text: str) -> dict:
        return {"size": len(text)}

    @chute.cord(public_api_path="/upload")
    async def upload(self, file: UploadFile) -> dict:
        return {"size": len(await file.read())}

    return chute


async def raw_request(port: int, data: bytes, *, read_timeout: float = 10.0) -> bytes:
    """Sends raw bytes to 127.0.0.1:port, and returns everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):  # a server may refuse before reading it all
            await writer.drain()
        async with asyncio.timeout(read_timeout):
            return await reader.read(-1)
    finally:
        writer.close()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def slow_senders(port: int, count: int, head: bytes, *, every: float) -> AsyncIterator[list[asyncio.Task]]:
    """Opens `count` connections that send `head`, then one body byte every `every` seconds."""
    writers: list[asyncio.StreamWriter] = []

    async def trickle() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        writer.write(head)
        while True:
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(every)

    tasks = [asyncio.create_task(trickle()) for _ in range(count)]
    try:
        while len(writers) < count:
            await asyncio.sleep(0.02)
        await asyncio.sleep(every * 2)  # every slow request has reached the chute
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        for writer in writers:
            writer.close()


# --- the runtime ---------------------------------------------------------------------------------


def test_chute_servers_bound_request_heads() -> None:
    config = build_config(victim_chute(), host="127.0.0.1", port=8000)
    config.load()
    assert issubclass(config.http_protocol_class, BoundedHttpToolsProtocol)
    assert server_options() == {"http": BoundedHttpToolsProtocol}


async def test_runtime_answers_a_huge_header_431_and_keeps_serving(live_server) -> None:
    url = live_server(victim_chute(), **server_options())
    head = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" + BIG_HEADER
    refused = asyncio.create_task(raw_request(port_of(url), head + b"content-length: 2\r\n\r\n{}"))
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        assert (await client.post("/echo", json={"text": "ok"})).json() == {"size": 2}
    answer = await refused
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"larger than 65536 bytes" in answer


async def test_runtime_answers_a_slow_head_408_and_closes_idle_connections(live_server) -> None:
    url = live_server(victim_chute(), http=QuickHeads)
    answer = await raw_request(port_of(url), b"POST /echo HTTP/1.1\r\nhost: x\r\n", read_timeout=10)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert await raw_request(port_of(url), b"", read_timeout=10) == b""  # closed, not held open
    # on a kept-alive connection too: a full request, then half a head
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(url))
    writer.write(b'POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 12\r\n\r\n{"text": ""}')
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
    await reader.readexactly(10)  # {"size":0}
    writer.write(b"POST /echo HTTP/1.1\r\nhost: x\r\n")
    async with asyncio.timeout(10):
        assert (await reader.read(-1)).startswith(b"HTTP/1.1 408 ")
    writer.close()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        assert (await client.post("/echo", json={"text": "ok"})).status_code == 200


async def test_slow_bodies_hold_no_concurrency_slot(live_server) -> None:
    url = live_server(victim_chute(), **server_options())
    head = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    async with slow_senders(port_of(url), 4, head, every=0.3), httpx.AsyncClient(base_url=url, timeout=10) as client:
        statuses = [(await client.post("/echo", json={"text": "victim"})).status_code for _ in range(5)]
    assert statuses == [200] * 5  # the chute has 2 slots and 4 slow clients: none of them holds one


async def test_slow_bodies_to_a_passthrough_cord_hold_no_slot(live_server) -> None:
    async def upstream(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        size = 0
        while (message := await receive())["type"] == "http.request":
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"%d" % size})

    upstream_port = port_of(live_server(upstream))
    chute = Chute(username="tests", name="relay", image="tests/relay", concurrency=2)

    @chute.cord(public_api_path="/v1/chat", passthrough=True, passthrough_port=upstream_port)
    async def chat(self, data):
        return data

    url = live_server(chute, **server_options())
    head = b"POST /v1/chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    async with slow_senders(port_of(url), 4, head, every=0.3), httpx.AsyncClient(base_url=url, timeout=10) as client:
        answers = [await client.post("/v1/chat", json={"prompt": "victim"}) for _ in range(5)]
    assert [(a.status_code, a.text) for a in answers] == [(200, "19")] * 5  # {"prompt":"victim"}, relayed whole


@pytest.mark.parametrize("path", ["/echo", "/upload"])
async def test_a_stalled_body_gets_408(live_server, path: str) -> None:
    chute = victim_chute()
    url = live_server(chute, http=QuickBodies)
    head = b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" % path.encode()
    head += b"content-length: 100\r\n\r\n{"
    answer = await raw_request(port_of(url), head)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"stalled" in answer
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:  # and the chute serves on
        assert (await client.post("/echo", json={"text": "ok"})).status_code == 200


async def test_max_body_size_bounds_fastapi_uploads(live_server, tmp_path) -> None:
    url = live_server(victim_chute(), **server_options())
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        small = await client.post("/upload", files={"file": ("a.bin", b"x" * 1000)})
        assert small.json() == {"size": 1000}

        async def big() -> AsyncIterator[bytes]:  # streamed, without a Content-Length
            yield b"--b\r\ncontent-disposition: form-data; name=file; filename=a.bin\r\n\r\n"
            for _ in range(8):
                yield b"x" * (1024 * 1024)
            yield b"\r\n--b--\r\n"

        headers = {"content-type": "multipart/form-data; boundary=b"}
        refused = await client.post("/upload", content=big(), headers=headers)
        assert refused.status_code == 413
        assert "1048576 bytes" in refused.json()["detail"]


async def test_proxy_refuses_a_huge_response_head_and_serves_others(live_server) -> None:
    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        if b"/huge" in request:
            writer.write(b"HTTP/1.1 200 OK\r\n")
            with contextlib.suppress(ConnectionError):
                for _ in range(100):  # 100 MiB of header, unless the proxy hangs up first
                    writer.write(b"x-big: " + b"a" * (1024 * 1024) + b"\r\n")
                    await writer.drain()
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = Proxy(read_timeout=10)

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
            return await send({"type": "lifespan.shutdown.complete"})
        await proxy.forward(scope, receive, send, host="127.0.0.1", port=port)

    url = live_server(app)
    async with server, httpx.AsyncClient(base_url=url, timeout=30) as client:
        huge, fine = await asyncio.gather(client.get("/huge"), client.get("/fine"))
        assert huge.status_code == 502
        assert "larger than 65536 bytes" in huge.json()["detail"]
        assert fine.text == "ok"
    await proxy.aclose()


# --- the host ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[Host]:
    from tests.conftest import free_port

    base = tmp_path_factory.mktemp("clients")
    host = Host(data_dir=base / "data", home=base / "home", port=free_port())
    host.home.mkdir()
    host.start()
    host.alice = host.add_user("alice")
    resp = host.api(
        "POST",
        "/chutes",
        key=host.alice,
        params={"public": "true"},
        content=hello_bundle(base / "hello.tgz"),
        headers={"Content-Type": "application/gzip"},
    )
    assert resp.status_code == 202, resp.text
    wait_for(lambda: victim_call(host) == 200, timeout=60, what="the public chute to be ready", host=host)
    yield host
    host.stop()


def victim_call(host: Host) -> int:
    return host.call("alice-hello", "/hello", json={"name": "victim"}, timeout=10).status_code


async def test_host_reads_no_anonymous_body(host: Host) -> None:
    """A 300 MiB body to the control API is answered 401 before the client has sent more than 1 KiB of it."""
    head = (
        b"POST /api/v1/chutes/x/scale HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % (300 << 20)
    )
    answer = await raw_request(host.port, head + b"{" + b" " * 1023, read_timeout=10)
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"missing API key" in answer
    assert victim_call(host) == 200


async def test_host_bounds_authenticated_control_bodies(host: Host) -> None:
    big = host.api("POST", "/chutes/hello/scale", key=host.alice, content=b'{"max_instances": 1' + b" " * 70_000 + b"}")
    assert big.status_code == 413
    assert "64 KiB" in big.json()["detail"]
    ok = host.api("POST", "/chutes/hello/scale", key=host.alice, json={"max_instances": 1})
    assert ok.status_code == 200


async def test_host_answers_huge_headers_431_and_keeps_serving(host: Host) -> None:
    head = b"GET /hello HTTP/1.1\r\nhost: alice-hello.localhost\r\n" + BIG_HEADER + b"\r\n"
    refused = asyncio.create_task(raw_request(host.port, head))
    assert await asyncio.to_thread(victim_call, host) == 200
    assert (await refused).startswith(b"HTTP/1.1 431 ")


async def test_slow_bodies_through_the_gateway_do_not_lock_out_a_public_chute(host: Host) -> None:
    head = (
        b"POST /hello HTTP/1.1\r\nhost: alice-hello.localhost\r\ncontent-type: application/json\r\n"
        b"content-length: 1000\r\n\r\n"
    )
    # the chute serves 16 at a time: 24 slow clients would take every slot if bodies counted
    async with slow_senders(host.port, 24, head, every=0.3):
        statuses = [await asyncio.to_thread(victim_call, host) for _ in range(5)]
    assert statuses == [200] * 5


async def test_two_host_headers_are_400(host: Host) -> None:
    head = b"GET /hello HTTP/1.1\r\nhost: alice-hello.localhost\r\nhost: bob-x.localhost\r\n\r\n"
    answer = await raw_request(host.port, head)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"more than one Host header" in answer


@pytest.mark.parametrize("spelling", ["Bearer\t{key}", 'Bearer "{key}"', "bearer   {key}"])
def test_host_keys_never_reach_a_chute_however_written(host: Host, spelling: str) -> None:
    headers = {"Authorization": spelling.format(key=host.alice), "X-Trace": "t"}
    seen = host.call("alice-hello", "/headers", method="GET", headers=headers).json()
    assert seen["authorization"] is None
    assert seen["x_trace"] == "t"


def test_forwarded_for_is_the_real_peer(host: Host) -> None:
    headers = {"X-Forwarded-For": "203.0.113.9"}
    seen = host.call("alice-hello", "/headers", method="GET", headers=headers).json()
    assert seen["x_forwarded_for"] == "127.0.0.1"


def test_a_named_proxys_forwarded_for_names_the_client(host_factory, tmp_path) -> None:
    behind = host_factory("--forwarded-allow-ips", "127.0.0.1")
    key = behind.add_user("alice")
    bundle = hello_bundle(tmp_path / "h.tgz")
    assert behind.api("POST", "/chutes", key=key, params={"public": "true"}, content=bundle).status_code == 202
    wait_for(lambda: victim_call(behind) == 200, timeout=60, what="the chute to be ready", host=behind)
    headers = {"X-Forwarded-For": "203.0.113.9"}
    seen = behind.call("alice-hello", "/headers", method="GET", headers=headers).json()
    assert seen["x_forwarded_for"] == "203.0.113.9"


def test_failed_key_checks_are_rate_limited_per_client(host: Host) -> None:
    statuses = [host.api("GET", "/me", key=f"cpk_{i:08x}_wrong").status_code for i in range(40)]
    assert statuses[0] == 401
    assert set(statuses) == {401, 429}
    assert statuses[:10] == [401] * 10 and statuses.count(429) >= 5  # a burst, then refused unlooked-up
    # the bucket refills: a real user at the same address is not locked out for long
    wait_for(lambda: host.api("GET", "/me", key=host.alice).status_code == 200, timeout=10, what="the key to pass")
    assert host.api("GET", "/me", key=host.alice).json() == {"name": "alice"}
    assert victim_call(host) == 200  # public chutes need no key check at all


def test_followed_logs_end_when_the_host_stops(host_factory, tmp_path) -> None:
    other = host_factory()
    key = other.add_user("bob")
    bundle = hello_bundle(tmp_path / "b.tgz", hello_manifest(username="bob"))
    assert other.api("POST", "/chutes", key=key, content=bundle).status_code == 202
    with httpx.stream(
        "GET", f"{other.url}/api/v1/chutes/hello/logs", params={"follow": "true"}, headers={"X-API-Key": key}
    ) as stream:
        assert stream.status_code == 200
        other.proc.terminate()
        assert other.proc.wait(timeout=20) in (0, -15)  # ended, not held open by the follower


# --- the dashboard and the gateway: bodies before a session, other sites, chutes' cookies --------


@contextlib.contextmanager
def signed_in(host: Host) -> Iterator[tuple[httpx.Client, str]]:
    """Gives a client signed in to the dashboard as alice, and the CSRF token of its pages."""
    with httpx.Client(base_url=host.url, timeout=30) as client:
        page = client.get("/")
        token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
        signed = client.post("/dashboard/sign-in", data={"key": host.alice, "token": token})
        assert signed.status_code == 303, signed.text
        yield client, re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)


@pytest.mark.parametrize(
    "path", ["/dashboard/api/chutes/x/scale", "/dashboard/try/alice-hello/hello", "/dashboard/api/chutes"]
)
async def test_dashboard_reads_no_anonymous_body(host: Host, path: str) -> None:
    """The dashboard's data routes answer 401 before a body is read, as the control API does."""
    head = b"POST %s HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (
        path.encode(),
        300 << 20,
    )
    answer = await raw_request(host.port, head + b"{" + b" " * 1023, read_timeout=10)
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"sign in again" in answer


def test_dashboard_bodies_are_bounded_for_signed_in_users_too(host: Host) -> None:
    with signed_in(host) as (client, csrf):
        big = b'{"max_instances": 1' + b" " * 70_000 + b"}"
        answer = client.post("/dashboard/api/chutes/hello/scale", content=big, headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 413
        assert "64 KiB" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        ("&".join(f"f{i}=x" for i in range(500)), "application/x-www-form-urlencoded", 400, "Too many fields"),
        ("key=" + "k" * 8000, "application/x-www-form-urlencoded", 400, "maximum size"),
        ("key=" + "k" * 20_000, "application/x-www-form-urlencoded", 413, "16 KiB"),
        (
            '--b\r\ncontent-disposition: form-data; name="key"; filename="k.bin"\r\n\r\nxx\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            400,
            "Too many files",
        ),
    ],
)
def test_sign_in_forms_are_small(host: Host, body: str, content_type: str, status: int, says: str) -> None:
    """No field floods, no long fields, no files: the sign-in and sign-out forms hold a key and a token."""
    for path in ("/dashboard/sign-in", "/dashboard/sign-out"):
        answer = httpx.post(host.url + path, content=body, headers={"content-type": content_type}, timeout=10)
        assert (answer.status_code, says in answer.text) == (status, True), answer.text


def test_sign_in_and_sign_out_refuse_other_sites_and_chutes_pages(host: Host) -> None:
    """A chute's page (same site as the dashboard) cannot post the sign-in form (a login into the
    attacker's account) nor the sign-out form, even holding the form's token."""
    chute_page = f"http://alice-hello.localhost:{host.port}"
    with httpx.Client(base_url=host.url, timeout=30) as client:
        token = re.search(r'name="token" value="([^"]+)"', client.get("/").text).group(1)
        for headers in ({"Origin": chute_page}, {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"}):
            forged = client.post("/dashboard/sign-in", data={"key": host.alice, "token": token}, headers=headers)
            assert forged.status_code == 403, headers
            assert "chutes_session" not in client.cookies
        token = re.search(r'name="token" value="([^"]+)"', forged.text).group(1)  # each refusal gives a new form
        same = client.post("/dashboard/sign-in", data={"key": host.alice, "token": token}, headers={"Origin": host.url})
        assert same.status_code == 303
    with signed_in(host) as (client, csrf):
        refused = client.post("/dashboard/sign-out", data={"csrf": csrf}, headers={"Origin": chute_page})
        assert refused.status_code == 403 and "another site" in refused.text
        assert client.get("/dashboard/api/chutes").status_code == 200  # still signed in


def test_try_it_needs_the_csrf_token_for_gets_too(host: Host) -> None:
    """Another page cannot make a signed-in browser call a GET cord with its user's key."""
    with signed_in(host) as (client, csrf):
        assert client.get("/dashboard/try/alice-hello/headers").status_code == 403
        sneaky = client.get(
            "/dashboard/try/alice-hello/headers",
            headers={"X-CSRF-Token": csrf, "Origin": f"http://alice-hello.localhost:{host.port}"},
        )
        assert sneaky.status_code == 403
        fine = client.get("/dashboard/try/alice-hello/headers", headers={"X-CSRF-Token": csrf})
        assert fine.status_code == 200 and fine.json()["authorization"] is None


def test_a_session_cookie_sent_twice_is_no_session(host: Host) -> None:
    """A second `chutes_session` (one planted for the parent domain) makes the request anonymous, not
    the planted session's."""
    with signed_in(host) as (client, _):
        token = client.cookies["chutes_session"]
        twice = httpx.get(
            f"{host.url}/dashboard/api/chutes", headers={"Cookie": f"chutes_session=planted; chutes_session={token}"}
        )
        assert twice.status_code == 401
        assert "second session cookie" in twice.json()["detail"] and "sign in again" in twice.json()["detail"]


def test_a_sign_in_form_token_is_good_for_one_sign_in(host: Host) -> None:
    """A flood of sign-ins replaying one form token and its cookie, or a token the client made up (it sets
    the cookie too), is refused: each sign-in needs a fresh form from the host."""
    page = httpx.get(f"{host.url}/")
    token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
    form = {"key": host.alice, "token": token}
    replay = {"Cookie": f"chutes_sign_in={token}"}
    assert httpx.post(f"{host.url}/dashboard/sign-in", data=form, headers=replay).status_code == 303
    again = httpx.post(f"{host.url}/dashboard/sign-in", data=form, headers=replay)
    assert again.status_code == 403 and "expired" in again.text and "chutes_session=" not in str(again.headers)
    made_up = httpx.post(
        f"{host.url}/dashboard/sign-in",
        data={"key": host.alice, "token": "made-up"},
        headers={"Cookie": "chutes_sign_in=made-up"},
    )
    assert made_up.status_code == 403


def test_one_user_signing_in_again_and_again_ends_only_their_own_oldest_sessions(host_factory) -> None:
    """Eve's sign-ins end eve's own oldest sessions past a small number each, never bob's."""
    from chutes_host.web.sessions import MAX_USER_SESSIONS

    own = host_factory()
    bob, eve = own.add_user("bob"), own.add_user("eve")

    def session_of(key: str) -> str:
        with httpx.Client(base_url=own.url, timeout=30) as client:
            token = re.search(r'name="token" value="([^"]+)"', client.get("/").text).group(1)
            assert client.post("/dashboard/sign-in", data={"key": key, "token": token}).status_code == 303
            return client.cookies["chutes_session"]

    def live(session: str) -> bool:
        answer = httpx.get(f"{own.url}/dashboard/api/chutes", headers={"Cookie": f"chutes_session={session}"})
        return answer.status_code == 200

    bobs = session_of(bob)
    eves = [session_of(eve) for _ in range(MAX_USER_SESSIONS + 5)]
    assert live(bobs)
    assert [live(s) for s in eves] == [False] * 5 + [True] * MAX_USER_SESSIONS


def cookie_jar_bundle(path: Path) -> bytes:
    manifest = hello_manifest(name="cookies", entrypoint="cookie_jar:chute", cords=[])
    source = (FIXTURES / "cookie_jar.py").read_text()
    return make_tar(
        path,
        [
            file_member("manifest.json", json.dumps(manifest).encode()),
            file_member("app/cookie_jar.py", source.encode()),
        ],
    )


def test_a_chutes_cookies_for_the_host_domain_never_reach_the_browser(host: Host, tmp_path: Path) -> None:
    """Set-Cookie with a Domain covering the host's own domain is dropped, on the direct path and the
    ASGI gateway alike; the chute's cookies for its own host pass."""
    bundle = cookie_jar_bundle(tmp_path / "cookies.tgz")
    deployed = host.api("POST", "/chutes", key=host.alice, params={"public": "true"}, content=bundle)
    assert deployed.status_code == 202, deployed.text
    wait_for(
        lambda: host.call("alice-cookies", "/cookies", method="GET").status_code == 200,
        timeout=60,
        what="the cookie chute to be ready",
        host=host,
    )

    def chunked():
        yield b"{}"

    answers = [
        host.call("alice-cookies", "/cookies", method="GET"),  # small and ready: the direct path
        host.call("alice-cookies", "/cookies-post", content=chunked(), headers={"content-type": "application/json"}),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers.get_list("set-cookie") == [
            "own=kept; Path=/; HttpOnly",
            "scoped=kept; Domain=alice-cookies.localhost",
        ]
    assert host.api("DELETE", "/chutes/cookies", key=host.alice).status_code == 200


def test_over_https_the_dashboard_takes_only_host_prefixed_cookies(host_factory) -> None:
    """Behind a TLS proxy the cookies are `__Host-` ones (Secure, Path=/, no Domain), which a browser takes
    from the host itself only; a plain `chutes_session`, as a chute could plant one, is no session."""
    behind = host_factory("--forwarded-allow-ips", "127.0.0.1")
    key = behind.add_user("carol")
    https = {"X-Forwarded-Proto": "https"}  # what the proxy says; the cookies are sent by hand (httpx sees http)
    page = httpx.get(behind.url, headers=https)
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("__Host-chutes_sign_in=") and "Path=/;" in cookie and "Secure" in cookie
    form = {"key": key, "token": re.search(r'name="token" value="([^"]+)"', page.text).group(1)}
    signed = httpx.post(f"{behind.url}/dashboard/sign-in", data=form, headers={**https, "Cookie": cookie.split(";")[0]})
    assert signed.status_code == 303, signed.text
    (session,) = [c for c in signed.headers.get_list("set-cookie") if c.startswith("__Host-chutes_session=")]
    assert "Secure" in session and "Path=/" in session and "Domain" not in session
    value = session.split(";")[0].split("=", 1)[1]
    own = httpx.get(f"{behind.url}/dashboard/api/chutes", headers={**https, "Cookie": f"__Host-chutes_session={value}"})
    assert own.json() == []
    planted = httpx.get(f"{behind.url}/dashboard/api/chutes", headers={**https, "Cookie": f"chutes_session={value}"})
    assert planted.status_code == 401
