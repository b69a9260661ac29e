"""A hostile tenant (eve) against the client connections of her streams: on a host not declared single-tenant
she never holds one (the gateway relays every stream), so she can neither re-connect a socket of the
host's network anywhere the host reaches, nor read a client's next request on a connection kept alive.
On a host declared single-tenant, stream handoff gives her the connection for one response only."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.host.conftest import Host, make_project, wait_for


def start(base: Path, *extra: str, chutes: tuple[str, ...]) -> Host:
    host = Host(data_dir=base / "data", home=base / "home", port=free_port(), extra_args=["--sandbox", "bwrap", *extra])
    host.home.mkdir()
    host.start()
    host.eve = host.add_user("eve")
    host.bob = host.add_user("bob")
    project = make_project(base / "project", *chutes, "victim.py")
    for ref, key in ((f"{name.removesuffix('.py')}:chute", host.eve) for name in chutes):
        deployed = host.cli("deploy", ref, key=key, cwd=project)
        assert deployed.returncode == 0, deployed.stderr
    deployed = host.cli("deploy", "victim:chute", key=host.bob, cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    return host


@pytest.fixture(scope="module")
def host(tmp_path_factory, sandbox_available) -> Iterator[Host]:
    """A host with its defaults: several tenants, streams relayed."""
    host = start(tmp_path_factory.mktemp("tenants"), chutes=("connection_thief.py",))
    yield host
    host.stop()


@pytest.fixture(scope="module")
def single(tmp_path_factory, sandbox_available) -> Iterator[Host]:
    """A host whose operator declared it single-tenant and turned stream handoff on."""
    host = start(tmp_path_factory.mktemp("single"), "--single-tenant", "--stream-handoff", chutes=("hostile.py",))
    yield host
    host.stop()


class HostOnlyService:
    """A TCP service on 127.0.0.1 of the host's network namespace, which a sandboxed chute cannot reach:
    records every connection it gets."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.visits: list[bytes] = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    self.visits.append(conn.recv(100))
                    conn.sendall(b"host-only service\n")

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        self.sock.close()


def process_tree(root: int) -> set[int]:
    """Returns `root` and every process descending from it."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{name}/stat").read_text()
                parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def socket_inodes(pid: int) -> set[str]:
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    found.add(target[8:-1])
    return found


def tcp_inodes_of_namespace(pid: int) -> set[str]:
    """Returns the inodes of every TCP socket of the network namespace `pid` lives in."""
    found = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                found.add(line.split()[9])
    return found - {"0"}


def instance_pid(host: Host, name: str, key: str) -> int:
    return host.api("GET", f"/chutes/{name}", key=key).json()["instances"][0]["pid"]


def test_a_chute_holds_no_socket_of_the_hosts_network_nor_reconnects_one(host: Host) -> None:
    """Eve's streaming cord looks for TCP sockets in its process while its stream is open, then disconnects
    each (connect AF_UNSPEC) and connects it to a service only the host's network reaches. Relayed, she
    has none: the service is never reached, and no process of her instance holds a host TCP socket."""
    assert host.call("eve-thief", "/report", key=host.eve, method="GET").status_code == 200  # her key, cached
    service = HostOnlyService()
    holding: set[str] = set()
    try:
        headers = {"Host": f"eve-thief.localhost:{host.port}", "Authorization": f"Bearer {host.eve}"}
        with httpx.stream(
            "POST", f"{host.url}/escape", json={"port": service.port, "hold": 2.0}, headers=headers, timeout=20
        ) as resp:
            lines = resp.iter_lines()
            assert next(line for line in lines if line.startswith("data: ")).startswith("data: ")
            host_sockets = tcp_inodes_of_namespace(host.proc.pid)  # her cord holds what it found for 2 s
            for pid in process_tree(instance_pid(host, "thief", host.eve)):
                holding |= socket_inodes(pid) & host_sockets
            with contextlib.suppress(httpx.HTTPError):
                for _ in lines:
                    pass
        report = wait_for(
            lambda: (r := host.call("eve-thief", "/report", key=host.eve, method="GET").json())["own"] and r,
            timeout=10,
            what="eve's report",
            host=host,
        )
    finally:
        service.close()
    assert not holding, f"eve's instance holds TCP sockets of the host's network: {holding}"
    assert report["sockets"] == [], report  # the sandbox's network has none of its own: any is the host's
    assert not any(attempt["ok"] for attempt in report["reconnected"]), report
    assert not report["own"]["ok"], report  # nor does her own socket get out of her network namespace
    assert service.visits == [], f"eve reached a service of the host's network: {service.visits}"


def test_a_kept_connection_never_carries_another_clients_request_to_the_chute(host: Host) -> None:
    """A client pools its connections (httpx.Client): after eve's stream answered, its next request, bob's
    with his key, leaves on the same connection. Eve's cord answers with keep-alive on any connection it
    holds and waits for that next request. Relayed, the host answers it: bob gets his secret, eve
    sees nothing of it."""
    assert host.call("eve-thief", "/report", key=host.eve, method="GET").status_code == 200  # her key, cached
    assert host.call("bob-vault", "/secret", key=host.bob, method="GET").status_code == 200  # his, cached
    with httpx.Client(base_url=host.url, timeout=20) as client:
        eve = {"Host": f"eve-thief.localhost:{host.port}", "Authorization": f"Bearer {host.eve}"}
        first = client.post("/keepalive", json={}, headers=eve)
        assert first.status_code == 200, first.text
        bob = {"Host": f"bob-vault.localhost:{host.port}", "Authorization": f"Bearer {host.bob}"}
        second = client.get("/secret", headers=bob)
    assert second.status_code == 200, second.text
    assert second.json()["secret"] == "bob-only-secret", second.text
    report = host.call("eve-thief", "/report", key=host.eve, method="GET").json()
    assert report["forged"] == 0 and report["stolen"] == "", report
    assert host.bob not in str(report)


def test_stream_handoff_is_refused_without_a_single_tenant_host(tmp_path: Path) -> None:
    from tests.host.conftest import run_cli

    home = tmp_path / "home"
    home.mkdir()
    args = ("host", "serve", "--data-dir", str(tmp_path / "data"), "--port", str(free_port()), "--stream-handoff")
    refused = run_cli(*args, home=home, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert "Error: --stream-handoff gives each chute its clients' TCP connections" in refused.stderr
    assert "Add --single-tenant" in refused.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was made


def stream_request(host: Host, slug: str, path: str, key: str, body: bytes) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nhost: %s.localhost:%d\r\nauthorization: Bearer %s\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (path.encode(), slug.encode(), host.port, key.encode(), len(body), body)
    )


def test_single_tenant_a_handed_over_connection_ends_with_its_stream(single: Host) -> None:
    """Eve's streaming cord keeps a copy of its client's connection (stream handoff gave it the socket):
    once the stream is over the host shuts the connection down for every holder, so she can neither write
    to that client nor read what it sends next."""
    host = single
    assert host.call("eve-hostile", "/hoarded", key=host.eve, method="GET").status_code == 200  # her key, cached
    with socket.create_connection(("127.0.0.1", host.port), timeout=20) as sock:
        sock.sendall(stream_request(host, "eve-hostile", "/hoard", host.eve, b'{"events": 3}'))
        answer = b""
        while chunk := sock.recv(65536):  # ends: the host shut the connection down
            answer += chunk
        with contextlib.suppress(OSError):  # what a client would send next on a connection it thought alive
            sock.sendall(
                b"GET /secret HTTP/1.1\r\nhost: bob-vault.localhost\r\nauthorization: Bearer %s\r\n\r\n"
                % host.bob.encode()
            )
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200 ok") and b"connection: close" in head  # handed over (relayed: kept alive)
    assert answer.endswith(b"0\r\n\r\n") and b"INJECTED" not in answer
    time.sleep(4)  # her thread waits 1 s, then reads and writes the kept connection for 2 s
    hoarded = host.call("eve-hostile", "/hoarded", key=host.eve, method="GET").json()
    assert hoarded["kept"] >= 1
    assert hoarded["read"] == "" and hoarded["written"] == 0, hoarded
    assert host.bob not in hoarded["read"]


def test_single_tenant_forged_handoff_messages_end_only_the_forgers_handoffs(single: Host) -> None:
    from chutes.handoff import DONE

    host = single
    forged = DONE.pack(4242, 200, 0.0).hex()  # "done" for a stream the host never handed her
    resp = host.call("eve-hostile", "/forge", key=host.eve, method="POST", json={"message": forged})
    assert resp.status_code == 200 and resp.json()["ok"], resp.text
    wait_for(lambda: "unexpected handoff message" in host.log_text(), timeout=10, what="the forgery noticed", host=host)
    resp = host.call("eve-hostile", "/hoard", key=host.eve, json={"events": 2})
    assert resp.status_code == 200 and resp.text.count("data: ") == 2
    assert resp.headers.get("connection") != "close"  # relayed from now on: the host no longer hands her streams
    victim = host.call("bob-vault", "/secret", key=host.bob, method="GET")
    assert victim.status_code == 200 and victim.json()["boot"]
