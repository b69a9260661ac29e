"""Hostile bundles (eve's) against a real host where bob has a chute: nothing written outside the
bundle, and no memory spent on a header bomb."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.host.bundles import header_bomb, hello_bundle, hello_manifest, link_chain
from tests.host.conftest import Host


@pytest.fixture(scope="module")
def host(tmp_path_factory, sandbox_available) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("bundles")
    host = Host(data_dir=base / "data", home=base / "home", port=free_port(), extra_args=["--sandbox", "bwrap"])
    host.home.mkdir()
    host.start()
    host.eve = host.add_user("eve")
    host.bob = host.add_user("bob")
    host.work = base / "work"
    host.work.mkdir()
    deployed = upload(host, hello_bundle(host.work / "bob.tgz", hello_manifest("bob", "vault")), key=host.bob)
    assert deployed.status_code == 202, deployed.text
    yield host
    host.stop()


def upload(host: Host, body: bytes, *, key: str) -> httpx.Response:
    return host.api("POST", "/chutes", key=key, content=body, headers={"Content-Type": "application/gzip"})


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024


def test_a_chain_of_links_cannot_write_into_another_chute(host: Host) -> None:
    victim = host.data_dir / "chutes" / "bob-vault" / "1" / "app" / "host_hello.py"
    code = victim.read_bytes()
    # the host unpacks into DATA/tmp/unpack-*: the chain's last member lands at DATA/chutes/... on paper
    chain = link_chain("chutes/bob-vault/1/app/host_hello.py")
    resp = upload(host, hello_bundle(host.work / "chain.tgz", hello_manifest("eve", "chain"), *chain), key=host.eve)
    assert resp.status_code == 400, resp.text
    detail = resp.json()["detail"]
    assert "bundle member 'app/a/b/c/d/up/esc' goes through 'app/a/b/c/d/up', which is a link" in detail
    assert victim.read_bytes() == code
    assert sorted(os.listdir(host.data_dir / "chutes")) == ["bob-vault"]
    assert os.listdir(host.data_dir / "tmp") == []


def test_a_header_bomb_costs_the_host_no_memory(host: Host) -> None:
    bomb = host.work / "bomb.tgz"
    assert header_bomb(bomb, payload_mib=300) < 320 * 1024  # a 300 MiB GNU long name, gzip'd
    before = peak_rss_mib(host.proc.pid)
    resp = upload(host, bomb.read_bytes(), key=host.eve)
    grown = peak_rss_mib(host.proc.pid) - before
    assert resp.status_code == 413, resp.text
    assert "headers (at the start) take more than 16 KiB" in resp.json()["detail"]
    assert grown < 32, f"the host's peak memory grew by {grown:.0f} MiB"
    assert sorted(os.listdir(host.data_dir / "chutes")) == ["bob-vault"]
    assert os.listdir(host.data_dir / "tmp") == []
