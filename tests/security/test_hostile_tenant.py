"""A hostile tenant (eve) against a real host and a victim (bob's private chute): every escape fails."""

from __future__ import annotations

import contextlib
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.host.conftest import Host, make_project, wait_for

HOST_SECRET = "host-secret-value-8d1f"


@pytest.fixture(scope="module")
def host(tmp_path_factory, sandbox_available) -> Iterator[Host]:  # noqa: ANN001
    base = tmp_path_factory.mktemp("hostile")
    host = Host(
        data_dir=base / "data",
        home=base / "home",
        port=free_port(),
        extra_args=["--sandbox", "bwrap"],
        env={"DATABASE_PASSWORD": HOST_SECRET, "CUDA_CACHE_TOKEN_X": HOST_SECRET},
    )
    host.home.mkdir()
    host.start()
    host.eve = host.add_user("eve")
    host.bob = host.add_user("bob")
    project = make_project(base / "project", "hostile.py", "victim.py")
    for ref, key in (("victim:chute", host.bob), ("hostile:chute", host.eve)):
        deployed = host.cli("deploy", ref, key=key, cwd=project)
        assert deployed.returncode == 0, deployed.stderr
    host.victim_boot = host.call("bob-vault", "/secret", key=host.bob, method="GET").json()["boot"]
    host.keys_before = api_keys(host)
    yield host
    host.stop()


def api_keys(host: Host) -> list[tuple]:
    with sqlite3.connect(host.data_dir / "host.db") as db:
        return db.execute("SELECT * FROM api_keys ORDER BY id").fetchall()


def attack(host: Host, cord: str, **params) -> dict | list:  # noqa: ANN003
    resp = host.call("eve-hostile", cord, key=host.eve, method="POST", json=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def victim_pid(host: Host) -> int:
    return host.api("GET", "/chutes/vault", key=host.bob).json()["instances"][0]["pid"]


def test_the_hosts_environment_is_out_of_reach(host: Host) -> None:
    assert not attack(host, "/environ_of", pid=host.proc.pid)["ok"]
    seen = attack(host, "/environ")
    assert seen, "the chute should at least see its own environment"
    assert all(HOST_SECRET not in env for env in seen.values())
    assert all("DATABASE_PASSWORD" not in env for env in seen.values())


def test_the_database_can_be_neither_read_nor_changed(host: Host) -> None:
    db = str(host.data_dir / "host.db")
    assert not attack(host, "/read", path=db)["ok"]
    assert not attack(host, "/sqlite", path=db)["ok"]
    attack(host, "/write", path=db)
    assert b"written by eve" not in (host.data_dir / "host.db").read_bytes()
    assert api_keys(host) == host.keys_before


def test_the_data_dir_shows_only_the_chutes_own_directory(host: Host) -> None:
    listed = attack(host, "/listdir", path=str(host.data_dir))
    if listed["ok"]:
        assert listed["result"] == ["chutes"]
    chutes = attack(host, "/listdir", path=str(host.data_dir / "chutes"))
    if chutes["ok"]:
        assert chutes["result"] == ["eve-hostile"]
    attack(host, "/write", path=str(host.data_dir / "planted.txt"))
    assert not (host.data_dir / "planted.txt").exists()


def test_the_victims_code_and_log_are_out_of_reach(host: Host) -> None:
    version = host.data_dir / "chutes" / "bob-vault" / "1"
    code = version / "app" / "victim.py"
    before = code.read_bytes()
    assert not attack(host, "/listdir", path=str(version))["ok"]
    assert not attack(host, "/read", path=str(code))["ok"]
    attack(host, "/write", path=str(code))
    assert code.read_bytes() == before
    log = host.data_dir / "chutes" / "bob-vault" / "logs" / "instance-0.log"
    assert "VAULT-LOG" in log.read_text()
    assert not attack(host, "/read", path=str(log))["ok"]


def test_the_victims_instance_cannot_be_called_directly(host: Host) -> None:
    sockets = sorted((host.data_dir / "run").glob("*.sock"))
    assert len(sockets) == 2  # eve's and bob's instances
    for path in sockets:
        assert not attack(host, "/connect", path=str(path))["ok"]
    assert not attack(host, "/connect", port=host.port)["ok"]  # no way around the gateway either


def test_no_inherited_descriptor_reaches_the_host(host: Host) -> None:
    fds = attack(host, "/fds")  # as the chute found them when it was imported
    sockets = [fd for fd in fds if "family" in fd]
    # the one it serves on, and its end of the socket pair on which the host hands streams over
    assert sorted((s["family"], s["listening"]) for s in sockets) == [("AF_UNIX", False), ("AF_UNIX", True)], fds
    assert not any("accept" in fd for fd in fds)
    own = str(host.data_dir / "chutes" / "eve-hostile")
    files = [fd["target"] for fd in fds if (fd["target"] or "").startswith("/")]
    assert all(path.startswith((own + "/", "/dev/")) for path in files), files  # its own log, nothing of the host's


def test_neither_the_host_nor_the_victim_can_be_signalled(host: Host) -> None:
    victim = victim_pid(host)
    for pid in (host.proc.pid, victim):
        assert not attack(host, "/kill", pid=pid, sig=signal.SIGKILL)["ok"]
    assert host.proc.poll() is None
    assert victim_pid(host) == victim


def test_the_victim_is_untouched_afterwards(host: Host) -> None:
    resp = host.call("bob-vault", "/secret", key=host.bob, method="GET")
    assert resp.status_code == 200
    assert resp.json() == {"secret": "bob-only-secret", "boot": host.victim_boot}
    assert host.call("bob-vault", "/secret", key=host.eve, method="GET").status_code == 404  # as for no chute
    assert api_keys(host) == host.keys_before


def test_the_sandbox_still_lets_a_chute_do_ordinary_work(host: Host) -> None:
    resp = host.call("bob-vault", "/chores", key=host.bob, method="GET")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"user": "chute", "cache": "kept", "home": "/tmp"}


def stream_request(host: Host, slug: str, path: str, key: str, body: bytes) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nhost: %s.localhost:%d\r\nauthorization: Bearer %s\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (path.encode(), slug.encode(), host.port, key.encode(), len(body), body)
    )


def test_a_handed_over_connection_ends_with_its_stream(host: Host) -> None:
    """Eve's streaming cord keeps a copy of its client's connection (stream handoff gave it the socket):
    once the stream is over the host shuts the connection down for every holder, so she can neither write
    to that client nor read what it sends next."""
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


def test_forged_handoff_messages_end_only_the_forgers_handoffs(host: Host) -> None:
    from chutes.handoff import DONE

    forged = DONE.pack(4242, 200, 0.0).hex()  # "done" for a stream the host never handed her
    assert attack(host, "/forge", message=forged)["ok"]
    wait_for(lambda: "unexpected handoff message" in host.log_text(), timeout=10, what="the forgery noticed", host=host)
    resp = host.call("eve-hostile", "/hoard", key=host.eve, json={"events": 2})
    assert resp.status_code == 200 and resp.text.count("data: ") == 2
    assert resp.headers.get("connection") != "close"  # relayed from now on: the host no longer hands her streams
    victim = host.call("bob-vault", "/secret", key=host.bob, method="GET")
    assert victim.status_code == 200 and victim.json()["boot"] == host.victim_boot
