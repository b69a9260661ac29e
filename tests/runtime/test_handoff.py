"""The instance's side of stream handoff (chutes.handoff): a real `python -m chutes.serve` given one end
of a socket pair with --handoff; this test plays the host, handing it real TCP client connections."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chutes.handoff import DONE, HEADER

FIXTURES = Path(__file__).parents[1] / "fixtures" / "chutes"


class Instance:
    def __init__(self, proc: subprocess.Popen, channel: socket.socket, uds: str) -> None:
        self.proc, self.channel, self.uds = proc, channel, uds
        self.listener = socket.create_server(("127.0.0.1", 0))

    def connection(self) -> tuple[socket.socket, socket.socket]:
        """Returns (the client's end, the server's end) of a new TCP connection on 127.0.0.1."""
        client = socket.create_connection(self.listener.getsockname(), timeout=10)
        server, _ = self.listener.accept()
        return client, server

    def hand_over(self, ident: int, request: bytes, *fds: int) -> None:
        if fds:
            socket.send_fds(self.channel, [HEADER.pack(ident), request], fds)
        else:
            self.channel.sendmsg([HEADER.pack(ident), request])

    def done(self) -> tuple[int, int, float]:
        self.channel.settimeout(10)
        return DONE.unpack(self.channel.recv(64))

    def stream(self, ident: int, count: int) -> tuple[tuple[int, int, float], bytes]:
        """Hands over a new connection with an SSE request for `count` items; once the instance reports it
        done, shuts the connection down as the host does (the end, for the instance's copy too) and returns
        (the report, all the client received)."""
        client, server = self.connection()
        self.hand_over(ident, sse_request(count), server.fileno())
        done = self.done()
        server.shutdown(socket.SHUT_RDWR)
        server.close()
        with client:
            return done, read_to_end(client)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    host_end, instance_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    uds = str(tmp_path / "instance.sock")
    with open(tmp_path / "instance.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chutes.serve",
                "streams:chute",
                "--uds",
                uds,
                "--handoff",
                str(instance_end.fileno()),
            ],
            cwd=FIXTURES,
            pass_fds=[instance_end.fileno()],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    instance_end.close()
    deadline = time.monotonic() + 30
    while not ready(uds):
        started = proc.poll() is None and time.monotonic() < deadline
        assert started, (tmp_path / "instance.log").read_text()
        time.sleep(0.05)
    made = Instance(proc, host_end, uds)
    yield made
    proc.terminate()
    proc.wait(20)
    made.listener.close()
    host_end.close()


def ready(uds: str) -> bool:
    """Whether the instance answers GET /_ready with 200 on its own listener."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        try:
            sock.connect(uds)
            sock.sendall(b"GET /_ready HTTP/1.1\r\nhost: instance\r\nconnection: close\r\n\r\n")
            return sock.recv(100).startswith(b"HTTP/1.1 200")
        except OSError:
            return False


def sse_request(count: int = 3) -> bytes:
    body = b'{"count": %d}' % count
    return b"POST /sse HTTP/1.1\r\nhost: instance\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


def read_to_end(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    parts = []
    while chunk := sock.recv(65536):
        parts.append(chunk)
    return b"".join(parts)


def test_a_handed_over_connection_is_answered_on_the_connection(instance: Instance) -> None:
    (ident, status, latency), answer = instance.stream(7, 2)  # reported once its response is complete
    assert (ident, status) == (7, 200) and 0 < latency < 10
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200 ok") and b"connection: close" in head
    assert answer.count(b"data: ") == 3 and answer.endswith(b"0\r\n\r\n")


def test_a_client_that_leaves_is_reported_done(instance: Instance) -> None:
    client, server = instance.connection()
    gated = b"POST /gated HTTP/1.1\r\nhost: instance\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
    instance.hand_over(8, gated, server.fileno())
    client.settimeout(10)
    assert client.recv(65536).startswith(b"HTTP/1.1 200 OK")
    client.close()
    server.close()  # the last holder besides the instance: the instance sees the connection go
    ident, status, _ = instance.done()
    assert (ident, status) == (8, 200)


def test_malformed_handoffs_are_ignored_and_the_next_one_served(instance: Instance) -> None:
    instance.hand_over(1, sse_request())  # no connection attached
    first, second = instance.connection(), instance.connection()
    instance.hand_over(2, sse_request(), first[1].fileno(), second[1].fileno())  # two
    instance.channel.sendmsg([b"\x00\x01"], [])  # shorter than a header
    done, answer = instance.stream(3, 1)
    assert done[:2] == (3, 200) and answer.count(b"data: ") == 2
    for pair in (first, second):  # the instance closed the descriptors it was given by mistake
        pair[1].close()
        with pair[0]:
            pair[0].settimeout(10)
            assert pair[0].recv(10) == b""
    assert instance.proc.poll() is None


def test_the_instance_keeps_serving_its_own_listener(instance: Instance) -> None:
    with httpx.Client(transport=httpx.HTTPTransport(uds=instance.uds), timeout=10) as http:
        resp = http.post("http://instance/sse", json={"count": 1})
    assert resp.status_code == 200 and resp.text.count("data: ") == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: os.open(os.devnull, os.O_RDONLY), "is not a socket"),
        (lambda: socket.socket().detach(), "is not a Unix SOCK_SEQPACKET socket"),
    ],
)
def test_a_bad_handoff_descriptor_is_refused_clearly(make, message: str) -> None:
    fd = make()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "chutes.serve", "streams:chute", "--port", "0", "--handoff", str(fd)],
            cwd=FIXTURES,
            pass_fds=[fd],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.close(fd)
    assert result.returncode == 1
    assert f"file descriptor {fd} {message}" in result.stderr and "Check --handoff" in result.stderr


def test_the_server_freezes_what_its_startup_loaded(tmp_path: Path) -> None:
    """A full collection must not walk a chute's model and libraries while its streams wait."""
    (tmp_path / "frozen.py").write_text(
        "import gc\n"
        "from chutes.chute import Chute\n"
        'chute = Chute(username="tests", name="frozen", image="tests/frozen")\n'
        '@chute.cord(public_api_path="/frozen", method="GET")\n'
        "async def frozen(self) -> dict:\n"
        '    return {"frozen": gc.get_freeze_count()}\n'
    )
    proc, uds = start_server(tmp_path, "frozen:chute", cwd=tmp_path)
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=uds), timeout=10) as http:
            frozen = http.get("http://instance/frozen").json()["frozen"]
        assert frozen > 10_000  # FastAPI, pydantic, uvicorn and the chute, at least
    finally:
        proc.terminate()
        proc.wait(20)


def start_server(tmp_path: Path, ref: str = "streams:chute", cwd: Path = FIXTURES, **env: str):
    """Starts `python -m chutes.serve REF` on a Unix socket, with `env` added; returns it and the socket once ready."""
    uds = str(tmp_path / "served.sock")
    with open(tmp_path / "served.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chutes.serve", ref, "--uds", uds],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while not ready(uds):
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "served.log").read_text()
        time.sleep(0.05)
    return proc, uds


def test_in_a_container_the_instance_connects_to_the_socket_it_is_told(tmp_path: Path) -> None:
    """The docker executor's way: CHUTES_HANDOFF_SOCKET names a listening socket; the instance connects once."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(tmp_path / "handoff.sock"))
    listener.listen(1)
    proc, uds = start_server(tmp_path, CHUTES_HANDOFF_SOCKET=str(tmp_path / "handoff.sock"))
    try:
        listener.settimeout(10)
        channel, _ = listener.accept()
        instance = Instance(proc, channel, uds)
        done, answer = instance.stream(5, 1)
        assert done[:2] == (5, 200) and answer.count(b"data: ") == 2
        instance.listener.close()
        channel.close()
    finally:
        listener.close()
        proc.terminate()
        proc.wait(20)


def test_an_unreachable_handoff_socket_only_costs_the_handoff(tmp_path: Path) -> None:
    proc, uds = start_server(tmp_path, CHUTES_HANDOFF_SOCKET=str(tmp_path / "missing.sock"))
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=uds), timeout=10) as http:
            assert http.post("http://instance/sse", json={"count": 1}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(20)
    log = (tmp_path / "served.log").read_text()
    assert f"no stream handoff: cannot connect to {tmp_path / 'missing.sock'}" in log
