"""A hostile tenant on a real host with the docker executor: it cannot reach, read or write past its container.

Needs DOCKER_HOST (see .ci/engine.sh); skips without an engine unless CI is set.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import free_port
from tests.host.conftest import Host, make_project

pytestmark = pytest.mark.engine

VICTIM = "victim-vault"
ATTACKER = "mallory-probe"


@pytest.fixture(scope="module")
def host(engine, tmp_path_factory) -> Iterator[Host]:
    from chutes_build.wheel import wheel_cache_dir

    base = tmp_path_factory.mktemp("isolation")
    marker = base / "imported-on-the-host"
    env = {"CHUTES_WHEEL_CACHE": str(wheel_cache_dir()), "CHUTES_ISOLATION_MARKER": str(marker)}
    if os.environ.get("CHUTES_BASE_IMAGE"):
        env["CHUTES_BASE_IMAGE"] = os.environ["CHUTES_BASE_IMAGE"]
    host = Host(
        data_dir=base / "data", home=base / "home", port=free_port(), extra_args=["--executor", "docker"], env=env
    )
    host.home.mkdir()
    host.start()
    host.marker = marker
    host.keys = {}
    try:
        for user, module in (("victim", "isolation_victim"), ("mallory", "isolation_attacker")):
            host.keys[user] = host.add_user(user)
            project = make_project(base / module, f"{module}.py")
            result = host.cli("deploy", f"{module}:chute", key=host.keys[user], cwd=project, timeout=600)
            assert result.returncode == 0, result.stderr + host.log_text()[-3000:]
        yield host
    finally:
        for user, name in (("victim", "vault"), ("mallory", "probe")):
            if user in host.keys:
                host.cli("chutes", "delete", name, "--yes", key=host.keys[user])
        host.stop()


def attack(host: Host, cord: str, /, *, method: str = "POST", **body: object) -> dict:
    resp = host.call(ATTACKER, cord, key=host.keys["mallory"], method=method, json=body or None, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


def container(host: Host, engine, slug: str):
    owner = hashlib.sha256(str(host.data_dir.resolve()).encode()).hexdigest()[:16]
    (found,) = engine.containers.list(filters={"label": [f"ai.chutes.slug={slug}", f"ai.chutes.host={owner}"]})
    return found


def address(host: Host, engine, slug: str) -> str:
    (network,) = container(host, engine, slug).attrs["NetworkSettings"]["Networks"].values()
    return network["IPAddress"]


def test_each_chute_has_its_own_network_as_it_asked(host: Host, engine) -> None:
    (victim_net,) = container(host, engine, VICTIM).attrs["NetworkSettings"]["Networks"]
    (attacker_net,) = container(host, engine, ATTACKER).attrs["NetworkSettings"]["Networks"]
    assert victim_net != attacker_net
    assert engine.networks.get(victim_net).attrs["Internal"] is True
    assert engine.networks.get(attacker_net).attrs["Internal"] is False  # allow_external_egress=True
    victim = container(host, engine, VICTIM).attrs["HostConfig"]
    assert victim["ReadonlyRootfs"] is False and not victim.get("Tmpfs")  # read_only_root=False
    assert victim["CapDrop"] == ["ALL"]


def test_the_host_never_imports_tenant_code(host: Host) -> None:
    assert not host.marker.exists(), host.marker.read_text()
    # nor does the host's environment reach the container
    assert "CHUTES_ISOLATION_MARKER" not in attack(host, "/self", method="GET")["env"]


def test_attacker_cannot_reach_the_victim_container_directly(host: Host, engine) -> None:
    victim = address(host, engine, VICTIM)
    # controls: the victim listens at that address (the host reaches it), and the probe can connect at all
    assert httpx.get(f"http://{victim}:8000/_ready", timeout=10).status_code == 200
    assert attack(host, "/connect", address="127.0.0.1", port=8000)["connected"] is True

    outcome = attack(host, "/connect", address=victim, port=8000)
    assert outcome["connected"] is False, outcome


def test_attacker_cannot_write_outside_its_scratch_space(host: Host) -> None:
    for path in ("/app/isolation_attacker.py", "/etc/owned", "/owned", "/opt/venv/owned"):
        outcome = attack(host, "/write", path=path)
        assert outcome["written"] is False, path
        assert "Read-only file system" in outcome["error"] or "Permission denied" in outcome["error"], outcome
    outcome = attack(host, "/write", path="/srv/mine/owned")
    assert outcome["written"] is False and "Read-only file system" in outcome["error"], outcome
    assert attack(host, "/write", path="/tmp/scratch")["written"] is True
    assert attack(host, "/write", path="/home/chutes/.cache")["written"] is True


def test_attacker_cannot_read_host_files_or_the_engine(host: Host) -> None:
    for path in (str(host.data_dir / "host.db"), str(host.marker.parent / "victim-vault"), "/var/run/docker.sock"):
        outcome = attack(host, "/read", path=path)
        assert outcome["read"] is False, (path, outcome)
    assert attack(host, "/read", path="/etc/hostname")["read"] is True  # control: its own files read fine
    me = attack(host, "/self", method="GET")
    assert me["uid"] != 0
    assert int(me["cap_eff"], 16) == 0
    assert me["no_new_privs"] == "1"
    assert "DOCKER_HOST" not in me["env"]


def test_victim_keeps_answering_through_the_gateway(host: Host) -> None:
    resp = host.call(VICTIM, "/secret", key=host.keys["victim"])
    assert resp.status_code == 200
    assert resp.json() == {"secret": "victim-only"}
    # and the attacker's key does not open it
    assert host.call(VICTIM, "/secret", key=host.keys["mallory"]).status_code in (401, 403, 404)
