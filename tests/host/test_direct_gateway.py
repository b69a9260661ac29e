"""The gateway's direct path (chutes_host.gateway.fastpath) against the ASGI gateway: two real hosts, one started
with --no-direct-gateway, the same chute on each, and the same raw requests must get the same bytes back."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import free_port
from tests.host.conftest import Host, make_project, wait_for

METRICS_KEY = "direct-metrics-key"


def start_host(base, *extra: str) -> Host:
    host = Host(
        data_dir=base / "data", home=base / "home", port=free_port(), extra_args=["--metrics-key", METRICS_KEY, *extra]
    )
    host.home.mkdir()
    host.start()
    host.alice = host.add_user("alice")
    project = make_project(base / "project", "host_direct.py")
    source = (project / "host_direct.py").read_text()
    (project / "host_private.py").write_text(source.replace('name="direct"', 'name="private"'))
    for module, visibility in (("host_direct", "--public"), ("host_private", "--private")):
        deployed = host.cli("deploy", f"{module}:chute", visibility, key=host.alice, cwd=project)
        assert deployed.returncode == 0, deployed.stderr
    return host


def host_pair(tmp_path_factory, first: tuple[str, ...], second: tuple[str, ...]) -> Iterator[tuple[Host, Host]]:
    """Starts two hosts with the same chutes, each with its own extra arguments; stops both afterwards."""
    started = [start_host(tmp_path_factory.mktemp("host"), *args) for args in (first, second)]
    yield started[0], started[1]
    for host in started:
        host.stop()


@pytest.fixture(scope="module")
def hosts(tmp_path_factory) -> Iterator[tuple[Host, Host]]:
    yield from host_pair(tmp_path_factory, (), ("--no-direct-gateway",))


def metric(host: Host, name: str, labels: str = "") -> int:
    """Returns the value of one of the host's /_metrics lines, e.g. `name{labels} 3`."""
    text = httpx.get(f"{host.url}/_metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}, timeout=10).text
    found = re.search(rf"^{name}{re.escape(labels)} (\d+)$", text, re.M)
    assert found, f"no {name}{labels} in /_metrics"
    return int(found.group(1))


def direct_requests(host: Host) -> int:
    return metric(host, "chutes_gateway_direct_requests_total")


def raw(host: Host, data: bytes, *, timeout: float = 20, source: str | None = None) -> bytes:
    """Sends `data` on one connection (from the address `source`, if given) and returns everything the
    host sends until it closes it (the last request of `data` says `Connection: close`, or is HTTP/1.0)."""
    bind = (source, 0) if source else None
    with socket.create_connection(("127.0.0.1", host.port), timeout=timeout, source_address=bind) as sock:
        sock.sendall(data.replace(b"PORT", str(host.port).encode()))
        parts = []
        while chunk := sock.recv(65536):
            parts.append(chunk)
    return b"".join(parts)


def one_by_one(host: Host, requests: list[bytes], *, timeout: float = 20) -> bytes:
    """Sends each request on one keep-alive connection once the answer to the one before is in (answers
    with a content-length only); returns the answers."""
    answers = b""
    with socket.create_connection(("127.0.0.1", host.port), timeout=timeout) as sock:
        buffer = b""
        for data in requests:
            sock.sendall(data.replace(b"PORT", str(host.port).encode()))
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(65536)
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head).group(1))
            while len(buffer) < length:
                buffer += sock.recv(65536)
            answers += head + b"\r\n\r\n" + buffer[:length]
            buffer = buffer[length:]
    return answers


def normalized(host: Host, answer: bytes) -> bytes:
    """The answer without what differs between two hosts: the date, and each host's own port."""
    return re.sub(rb"date: [^\r]*", b"date: -", answer).replace(str(host.port).encode(), b"PORT")


def request(method: str, path: str, *, slug: str = "alice-direct", body: bytes = b"", headers: str = "") -> bytes:
    length = f"content-length: {len(body)}\r\n" if body or method == "POST" else ""
    head = f"{method} {path} HTTP/1.1\r\nhost: {slug}.localhost:PORT\r\n{headers}{length}"
    return head.encode() + b"\r\n" + body


CLOSE = "connection: close\r\n"
CASES = {
    "json GET": request("GET", "/hello", headers=CLOSE),
    "json POST": request(
        "POST", "/echo", body=b'{"text": "Ada Lovelace"}', headers="content-type: application/json\r\n" + CLOSE
    ),
    "keep-alive then close": request("GET", "/hello") + request("POST", "/echo", body=b'{"text": "x"}', headers=CLOSE),
    "three pipelined": request("GET", "/hello") * 2 + request("GET", "/hello", headers=CLOSE),
    "body over 64 KiB": request("POST", "/echo", body=b'{"text": "%s"}' % (b"y" * 100_000), headers=CLOSE),
    "chunked request body": (
        b"POST /echo HTTP/1.1\r\nhost: alice-direct.localhost:PORT\r\ntransfer-encoding: chunked\r\n"
        + CLOSE.encode()
        + b'\r\n5\r\n{"tex\r\n9\r\nt": "ab"}\r\n0\r\n\r\n'
    ),
    "invalid JSON (the chute's 422)": request("POST", "/echo", body=b'{"text": ', headers=CLOSE),
    "wrong type (the chute's 422)": request("POST", "/echo", body=b'{"text": 5}', headers=CLOSE),
    "a cord that raises (500)": request("POST", "/fail", body=b"{}", headers=CLOSE),
    "unknown path (the chute's 404)": request("GET", "/nope", headers=CLOSE),
    "response over 64 KiB": request("POST", "/big", body=b'{"size": 300000}', headers=CLOSE),
    "HTTP/1.0": b"GET /hello HTTP/1.0\r\nhost: alice-direct.localhost:PORT\r\n\r\n",
    "HEAD": request("HEAD", "/hello", headers=CLOSE),
    "headers dropped and set": request(
        "GET",
        "/request?q=1%202",
        headers="x-forwarded-for: 6.6.6.6\r\nx-api-key: cpk_abc_def\r\nx-trace: t-1\r\n"
        "connection: keep-alive, x-trace\r\n",
    )
    + request("GET", "/request", headers="authorization: Bearer sk-own\r\nx-trace: t-2\r\n" + CLOSE),
    "unknown chute": request("GET", "/hello", slug="alice-nothing", headers=CLOSE),
    "private, no key": request("GET", "/hello", slug="alice-private", headers=CLOSE),
    "private, wrong key": request("GET", "/hello", slug="alice-private", headers="x-api-key: cpk_x_y\r\n" + CLOSE),
    "private docs page": request("GET", "/docs", slug="alice-private", headers=CLOSE),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_both_paths_answer_the_same_bytes(hosts: tuple[Host, Host], case: str) -> None:
    direct, asgi = hosts
    answers = [normalized(host, raw(host, CASES[case])) for host in (direct, asgi)]
    assert answers[0] == answers[1]
    assert answers[0].startswith(b"HTTP/1.")


def test_private_chute_with_its_key_goes_direct_once_the_key_is_cached(hosts: tuple[Host, Host]) -> None:
    direct, asgi = hosts
    answers = []
    for host in (direct, asgi):
        key = f"x-api-key: {host.alice}\r\n"
        before = direct_requests(host)
        calls = [request("GET", "/request", slug="alice-private", headers=key)] * 2
        answer = one_by_one(host, [*calls, request("GET", "/hello", slug="alice-private", headers=key + CLOSE)])
        answers.append(normalized(host, answer))
        assert answer.count(b"HTTP/1.1 200 OK") == 3
        assert host.alice.encode() not in answer  # the chute never saw the host key
        if host is direct:
            assert direct_requests(host) == before + 2  # the first call cached the key
    assert answers[0] == answers[1]


def test_the_direct_path_is_taken_and_the_other_host_never_takes_it(hosts: tuple[Host, Host]) -> None:
    direct, asgi = hosts
    before = direct_requests(direct)
    for host in (direct, asgi):
        with httpx.Client(headers={"Host": f"alice-direct.localhost:{host.port}"}, timeout=20) as client:
            for i in range(20):
                resp = client.post(f"{host.url}/echo", json={"text": f"call {i}"})
                assert resp.json() == {"length": len(f"call {i}"), "start": f"call {i}"}
    assert direct_requests(direct) >= before + 19  # the first may open the pooled connection the others reuse
    assert direct_requests(asgi) == 0


def test_streams_arrive_whole_and_alike(hosts: tuple[Host, Host]) -> None:
    bodies = []
    for host in hosts:
        with httpx.stream(
            "POST",
            f"{host.url}/count",
            json={"to": 40, "delay": 0.005},
            headers={"Host": f"alice-direct.localhost:{host.port}"},
            timeout=20,
        ) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            bodies.append(resp.read())
    assert bodies[0] == bodies[1]
    assert bodies[0].count(b"data: ") == 40


def in_flight(host: Host, slug: str = "alice-direct") -> int:
    return metric(host, "chutes_chute_requests_in_flight", f'{{chute="{slug}"}}')


def test_a_client_leaving_mid_stream_frees_its_slot(hosts: tuple[Host, Host]) -> None:
    direct, _ = hosts
    before = direct_requests(direct)
    sock = socket.create_connection(("127.0.0.1", direct.port), timeout=20)
    body = b'{"to": 100000, "delay": 0.01}'
    sock.sendall(request("POST", "/count", body=body).replace(b"PORT", str(direct.port).encode()))
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
    assert direct_requests(direct) == before + 1
    wait_for(lambda: in_flight(direct, "alice-direct") == 1, timeout=10, what="the stream in flight", host=direct)
    sock.close()
    wait_for(lambda: in_flight(direct, "alice-direct") == 0, timeout=10, what="the slot freed", host=direct)


def test_a_slow_reader_gets_a_big_answer_whole(hosts: tuple[Host, Host]) -> None:
    """Past the socket's buffers the direct path stops writing until the client reads again."""
    direct, _ = hosts
    size = 8_000_000
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", direct.port))
    body = b'{"size": %d}' % size
    sock.sendall(request("POST", "/big", body=body, headers=CLOSE).replace(b"PORT", str(direct.port).encode()))
    time.sleep(1)  # let the host fill every buffer between it and this socket
    parts = []
    while chunk := sock.recv(16384):
        parts.append(chunk)
    sock.close()
    answer = b"".join(parts)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert payload == b'{"data":"' + b"x" * size + b'"}'


def test_many_clients_at_once_all_get_their_own_answers(hosts: tuple[Host, Host]) -> None:
    direct, _ = hosts
    failures: list[str] = []

    def client(n: int) -> None:
        with httpx.Client(headers={"Host": f"alice-direct.localhost:{direct.port}"}, timeout=30) as http:
            for i in range(25):
                text = f"client {n} call {i}"
                resp = http.post(f"{direct.url}/echo", json={"text": text})
                if resp.status_code != 200 or resp.json() != {"length": len(text), "start": text[:16]}:
                    failures.append(f"{text}: {resp.status_code} {resp.text[:80]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    wait_for(lambda: in_flight(direct, "alice-direct") == 0, timeout=10, what="every slot freed", host=direct)


@pytest.fixture(scope="module")
def trusting_hosts(tmp_path_factory) -> Iterator[tuple[Host, Host]]:
    """Hosts behind a TLS proxy at 127.0.0.2 (--forwarded-allow-ips), with and without the direct path."""
    trust = ("--forwarded-allow-ips", "127.0.0.2")
    yield from host_pair(tmp_path_factory, trust, (*trust, "--no-direct-gateway"))


@pytest.mark.parametrize(("source", "client"), [("127.0.0.2", "6.6.6.6"), ("127.0.0.1", "127.0.0.1")])
def test_behind_a_trusted_proxy_the_client_is_the_one_it_names(
    trusting_hosts: tuple[Host, Host], source: str, client: str
) -> None:
    direct, asgi = trusting_hosts
    call = request("GET", "/request", headers="x-forwarded-for: 6.6.6.6\r\nx-forwarded-proto: https\r\n" + CLOSE)
    before = direct_requests(direct)
    answers = [normalized(host, raw(host, call, source=source)) for host in (direct, asgi)]
    assert answers[0] == answers[1]
    seen = json.loads(answers[0].partition(b"\r\n\r\n")[2])
    assert seen["x_forwarded_for"] == client  # from the proxy it trusts, the client it names; else the peer
    assert seen["x_forwarded_proto"] == ("https" if source == "127.0.0.2" else "http")
    assert direct_requests(direct) == before + 1


def test_a_full_instance_with_none_other_coming_still_goes_direct(hosts: tuple[Host, Host], tmp_path) -> None:
    """Over its concurrency, with no other instance on its way, the lobby would forward at once anyway (the
    instance answers 429 itself): the direct path does the same instead of leaving it to the ASGI gateway."""
    direct, _ = hosts
    project = make_project(tmp_path / "busy", "host_direct.py")
    source = (project / "host_direct.py").read_text()
    (project / "host_busy.py").write_text(
        source.replace('name="direct"', 'name="busy"').replace("concurrency=64", "concurrency=2")
    )
    deployed = direct.cli("deploy", "host_busy:chute", "--public", key=direct.alice, cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    direct.call("alice-busy", "/hello", method="GET")  # a pooled connection for the calls below
    before = direct_requests(direct)
    statuses: list[int] = []

    def call() -> None:
        resp = direct.call("alice-busy", "/count", json={"to": 3, "delay": 0.3})
        statuses.append(resp.status_code)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(statuses)) in ([200], [200, 429]) and statuses.count(200) >= 2, statuses
    assert direct_requests(direct) == before + 6
    wait_for(lambda: in_flight(direct, "alice-busy") == 0, timeout=10, what="every slot freed", host=direct)


def test_a_body_that_trickles_in_is_refused_in_time_and_frees_its_slot(hosts: tuple[Host, Host]) -> None:
    """A direct request holds an instance's slot while its body comes: a client sending one byte a
    second (never idle long enough for the stall timer) is answered 408 once its body is overdue,
    10 s plus 1 s a KiB declared, and the slot is free again."""
    direct, _ = hosts
    body = b'{"text": "%s"}' % (b"z" * 1000)  # 1,014 bytes: whole within about 11 s
    head = request("POST", "/echo", body=body).replace(b"PORT", str(direct.port).encode())[: -len(body)]
    before = direct_requests(direct)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", direct.port), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        for byte in body:
            if time.monotonic() - started > 25:
                break
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            if answer:
                break
            time.sleep(1)
        sock.setblocking(True)
        while not answer.endswith(b"}") and time.monotonic() - started < 30:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"the request body came too slowly" in answer
    assert 10 < took < 20, took
    assert direct_requests(direct) == before + 1  # it was the direct path's
    wait_for(lambda: in_flight(direct) == 0, timeout=10, what="the slot freed", host=direct)
