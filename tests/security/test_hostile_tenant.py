"""A hostile tenant (eve) against a real host and a victim (bob's private chute): every escape fails."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.host.conftest import Host, make_project

HOST_SECRET = "host-secret-value-8d1f"


@pytest.fixture(scope="module")
def host(tmp_path_factory, sandbox_available) -> Iterator[Host]:
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


def attack(host: Host, cord: str, **params) -> dict | list:
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
    # the one it serves on only: no stream handoff socket pair on a host not declared single-tenant
    assert sorted((s["family"], s["listening"]) for s in sockets) == [("AF_UNIX", True)], fds
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
