"""Stream handoff (chutes_host.gateway.handoff, chutes.handoff): a request to a streaming cord on the process
executor is answered by the instance on the client's own connection. Two real hosts serve the same chutes,
one declared single-tenant with --stream-handoff and one with the default (relaying every stream); what a
client gets must not tell them apart, apart from the connection closing after a handed-over stream."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.host.conftest import Host, wait_for
from tests.host.test_direct_gateway import CLOSE, host_pair, in_flight, metric, normalized, raw, request, start_host

SINGLE_TENANT = ("--single-tenant", "--stream-handoff")


@pytest.fixture(scope="module")
def hosts(tmp_path_factory) -> Iterator[tuple[Host, Host]]:
    yield from host_pair(tmp_path_factory, SINGLE_TENANT, ())


def handoffs(host: Host) -> int:
    return metric(host, "chutes_gateway_handoffs_total")


def dechunked(answer: bytes) -> tuple[bytes, bytes]:
    """Returns (head, body) of a raw chunked answer, the body decoded."""
    return split_chunked(answer)[:2]


def split_chunked(answer: bytes) -> tuple[bytes, bytes, bytes]:
    """Returns (head, decoded body, what follows the last chunk) of a raw chunked answer: the body apart from
    how the parts were cut, which depends on timing."""
    head, _, rest = answer.partition(b"\r\n\r\n")
    body = b""
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return head, body, rest[2:]
        body, rest = body + rest[:size], rest[size + 2 :]
    return head, body, b""


def events(body: bytes) -> list[dict]:
    return [json.loads(line[6:]) for line in body.split(b"\n") if line.startswith(b"data: ")]


def headers_of(head: bytes) -> dict[bytes, bytes]:
    lines = head.split(b"\r\n")[1:]
    return {name.lower(): value for name, _, value in (line.partition(b": ") for line in lines)}


def test_a_stream_is_handed_over_and_arrives_as_relayed(hosts: tuple[Host, Host]) -> None:
    handing, relaying = hosts
    before = handoffs(handing), handoffs(relaying)
    answers = {}
    for host in hosts:
        close = CLOSE if host is relaying else ""  # a handed-over stream ends its connection anyway
        headers = "content-type: application/json\r\n" + close
        call = request("POST", "/count", body=b'{"to": 30, "delay": 0.002}', headers=headers)
        head, body = dechunked(raw(host, call))  # raw reads until the host closes the connection
        answers[host.port] = normalized(host, head), body
    (handed_head, handed_body), (relayed_head, relayed_body) = answers[handing.port], answers[relaying.port]
    assert handed_body == relayed_body
    assert [e["n"] for e in events(handed_body)] == list(range(30))
    assert handed_head.startswith(b"HTTP/1.1 200 OK") and relayed_head.startswith(b"HTTP/1.1 200 OK")
    handed, relayed = headers_of(handed_head), headers_of(relayed_head)
    assert handed[b"connection"] == b"close"  # the connection ends with the stream: it was the instance's
    for name in (b"content-type", b"transfer-encoding", b"connection"):
        assert handed[name] == relayed[name]
    assert (handoffs(handing), handoffs(relaying)) == (before[0] + 1, before[1])
    wait_for(lambda: in_flight(handing) == 0, timeout=10, what="the handed-over stream counted done", host=handing)


def test_the_instance_sees_the_request_as_a_relayed_one(hosts: tuple[Host, Host]) -> None:
    """The same head reaches the cord: host keys and the client's X-Forwarded-For dropped, X-Forwarded-* set."""
    seen = []
    for host in hosts:
        headers = "x-forwarded-for: 6.6.6.6\r\nx-api-key: cpk_abc_def\r\ncontent-type: application/json\r\n"
        call = request("POST", "/seen", body=b'{"tag": "t"}', headers=headers + CLOSE)
        seen.append(events(normalized(host, dechunked(raw(host, call))[1])))
    assert seen[0] == seen[1]
    (event,) = seen[0]
    assert event["x_forwarded_for"] == "127.0.0.1" and event["x_api_key"] is None
    assert event["connection"] is None and event["host"] == "alice-direct.localhost:PORT"


def test_a_private_stream_with_a_cached_key_is_handed_over_without_the_key(hosts: tuple[Host, Host]) -> None:
    handing, _ = hosts
    key = {"Authorization": f"Bearer {handing.alice}"}
    assert handing.call("alice-private", "/hello", method="GET", headers=key).status_code == 200  # caches the key
    before = handoffs(handing)
    resp = handing.call("alice-private", "/seen", json={"tag": "private"}, headers=key)
    assert resp.status_code == 200, resp.text
    (event,) = events(resp.content)
    assert event["tag"] == "private" and event["authorization"] is None
    assert handing.alice not in resp.text
    assert handoffs(handing) == before + 1
    anonymous = handing.call("alice-private", "/seen", json={"tag": "x"})
    assert anonymous.status_code == 401  # no key: never reaches the instance, handed over or not


def test_a_body_up_to_the_direct_paths_limit_is_handed_over_whole(hosts: tuple[Host, Host]) -> None:
    handing, _ = hosts
    before = handoffs(handing)
    tag = "t" * (64 * 1024 - 20)
    body = json.dumps({"tag": tag}).encode()
    assert len(body) <= 64 * 1024
    call = request("POST", "/seen", body=body, headers="content-type: application/json\r\n" + CLOSE)
    (event,) = events(dechunked(raw(handing, call))[1])
    assert event["tag"] == tag
    assert handoffs(handing) == before + 1


def test_only_streaming_cords_are_handed_over(hosts: tuple[Host, Host]) -> None:
    handing, _ = hosts
    before = handoffs(handing)
    with httpx.Client(headers={"Host": f"alice-direct.localhost:{handing.port}"}, timeout=20) as client:
        for i in range(5):
            assert client.get(f"{handing.url}/hello").json() == {"message": "Hello!"}
            assert client.post(f"{handing.url}/echo", json={"text": f"{i}"}).status_code == 200
        resp = client.post(f"{handing.url}/count", json={"to": 2})  # the pooled keep-alive connection: handed over
        assert resp.status_code == 200 and resp.headers["connection"] == "close"
    assert handoffs(handing) == before + 1


def test_a_stream_refused_by_the_cord_gets_the_same_answer(hosts: tuple[Host, Host]) -> None:
    handing, relaying = hosts
    answers, counted = [], []
    for host in hosts:
        wait_for(lambda h=host: in_flight(h) == 0, timeout=10, what="no request in flight", host=host)
        before = requests_and_errors(host)
        call = request("POST", "/count", body=b'{"to": "many"}', headers="content-type: application/json\r\n" + CLOSE)
        head, _, body = normalized(host, raw(host, call)).partition(b"\r\n\r\n")
        answers.append((head.split(b"\r\n")[0], headers_of(head)[b"content-type"], body))
        wait_for(lambda h=host: in_flight(h) == 0, timeout=10, what="the request counted", host=host)
        counted.append(tuple(after - then for after, then in zip(requests_and_errors(host), before, strict=True)))
    assert answers[0] == answers[1]
    assert answers[0][0] == b"HTTP/1.1 422 Unprocessable Entity"
    assert counted == [(1, 0), (1, 0)]  # the instance told the host the status of the stream it answered


def requests_and_errors(host: Host, slug: str = "alice-direct") -> tuple[int, int]:
    labels = f'{{chute="{slug}"}}'
    return metric(host, "chutes_chute_requests_total", labels), metric(
        host, "chutes_chute_request_errors_total", labels
    )


def test_a_request_pipelined_behind_a_stream_is_never_handed_over(hosts: tuple[Host, Host]) -> None:
    """The client's next request must not reach the instance on the connection: both are relayed."""
    handing, relaying = hosts
    before = handoffs(handing)
    pipelined = request("POST", "/count", body=b'{"to": 3}') + request("GET", "/hello", headers=CLOSE)
    answers = []
    for host in hosts:
        head, body, then = split_chunked(raw(host, pipelined))
        answers.append((normalized(host, head), body, normalized(host, then)))
    assert answers[0] == answers[1]
    head, body, then = answers[0]
    assert head.startswith(b"HTTP/1.1 200 OK") and [e["n"] for e in events(body)] == [0, 1, 2]
    assert then.startswith(b"HTTP/1.1 200 OK") and then.endswith(b'{"message":"Hello!"}')
    assert handoffs(handing) == before


def test_a_client_leaving_a_handed_over_stream_frees_its_slot(hosts: tuple[Host, Host]) -> None:
    handing, _ = hosts
    before = handoffs(handing)
    sock = socket.create_connection(("127.0.0.1", handing.port), timeout=20)
    call = request("POST", "/count", body=b'{"to": 100000, "delay": 0.01}')
    sock.sendall(call.replace(b"PORT", str(handing.port).encode()))
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
    assert handoffs(handing) == before + 1
    wait_for(lambda: in_flight(handing) == 1, timeout=10, what="the stream in flight", host=handing)
    sock.close()
    wait_for(lambda: in_flight(handing) == 0, timeout=10, what="the slot freed", host=handing)


def test_many_streams_at_once_each_get_their_own_events(hosts: tuple[Host, Host]) -> None:
    handing, _ = hosts
    before = handoffs(handing)
    socks = []
    for n in range(40):
        sock = socket.create_connection(("127.0.0.1", handing.port), timeout=30)
        body = b'{"tag": "stream %d"}' % n
        call = request("POST", "/seen", body=body, headers="content-type: application/json\r\n")
        sock.sendall(call.replace(b"PORT", str(handing.port).encode()))
        socks.append(sock)
    for n, sock in enumerate(socks):
        parts = []
        while chunk := sock.recv(65536):
            parts.append(chunk)
        sock.close()
        (event,) = events(dechunked(b"".join(parts))[1])
        assert event["tag"] == f"stream {n}"
    assert handoffs(handing) == before + 40
    wait_for(lambda: in_flight(handing) == 0, timeout=10, what="every slot freed", host=handing)


def instance_pid(host: Host, slug: str = "direct") -> int:
    return host.api("GET", f"/chutes/{slug}", key=host.alice).json()["instances"][0]["pid"]


def test_an_instance_that_dies_mid_stream_ends_the_connection(tmp_path) -> None:
    host = start_host(tmp_path, *SINGLE_TENANT)
    try:
        sock = socket.create_connection(("127.0.0.1", host.port), timeout=20)
        call = request("POST", "/count", body=b'{"to": 100000, "delay": 0.01}')
        sock.sendall(call.replace(b"PORT", str(host.port).encode()))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        assert handoffs(host) == 1
        os.kill(instance_pid(host), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while sock.recv(65536):  # the stream stops, and the host closes the connection
            assert time.monotonic() < deadline, "the connection outlived its instance"
        sock.close()
        wait_for(lambda: in_flight(host) == 0, timeout=10, what="the slot freed", host=host)
        assert requests_and_errors(host)[1] >= 1  # a stream its instance never finished
    finally:
        host.stop()


def test_a_stopping_host_ends_its_handed_over_streams(tmp_path) -> None:
    host = start_host(tmp_path, *SINGLE_TENANT)
    sock = socket.create_connection(("127.0.0.1", host.port), timeout=20)
    call = request("POST", "/count", body=b'{"to": 100000, "delay": 0.01}')
    sock.sendall(call.replace(b"PORT", str(host.port).encode()))
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
    assert handoffs(host) == 1
    started = time.monotonic()
    host.proc.send_signal(signal.SIGTERM)
    host.proc.wait(30)
    assert time.monotonic() - started < 20
    sock.settimeout(5)
    while sock.recv(65536):  # whatever was still on its way, then the end
        pass
    sock.close()
    host.proc = None


def test_a_handoff_listener_that_cannot_be_made_leaves_nothing(tmp_path) -> None:
    """The docker executor then relays the container's streams; it must get an OSError, and no directory."""
    from chutes_host.gateway.handoff import HandoffListener

    deep = tmp_path / ("x" * 120)  # too long a path for a Unix socket
    deep.mkdir()
    with pytest.raises(OSError, match="path too long"):
        HandoffListener(deep, os.getuid(), os.getgid())
    assert list(deep.iterdir()) == []
