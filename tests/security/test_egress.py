"""`Chute(allow_external_egress=...)` decides whether an instance has any network beyond its own loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.host.conftest import FIXTURES, Host


async def reachable(scope, receive, send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"reached"})


@pytest.fixture
def host(tmp_path: Path, sandbox_available) -> Iterator[Host]:
    host = Host(data_dir=tmp_path / "data", home=tmp_path / "home", port=free_port(), extra_args=["--sandbox", "bwrap"])
    host.home.mkdir()
    yield host.start()
    host.stop()


def test_only_a_chute_that_asks_for_egress_reaches_beyond_its_loopback(host: Host, tmp_path: Path, live_server) -> None:
    outside = int(live_server(reachable).rsplit(":", 1)[1])
    key = host.add_user("eve")
    source = (FIXTURES / "hostile.py").read_text()
    for name, egress in (("closed", False), ("open", True)):
        project = tmp_path / name
        project.mkdir()
        chute = (
            f'Chute(username="eve", name="{name}", image="tests/{name}", allow_external_egress={egress}, '
            "node_selector=NodeSelector(gpu_count=0))"
        )
        (project / "hostile.py").write_text(
            source.replace(
                'Chute(username="eve", name="hostile", image="tests/hostile", node_selector=NodeSelector(gpu_count=0))',
                chute,
            )
        )
        deployed = host.cli("deploy", "hostile:chute", key=key, cwd=project)
        assert deployed.returncode == 0, deployed.stderr
    closed = host.call("eve-closed", "/connect", key=key, json={"port": outside}).json()
    assert not closed["ok"]
    opened = host.call("eve-open", "/connect", key=key, json={"port": outside}).json()
    assert opened["ok"] and opened["result"].startswith("HTTP/1.1 200"), opened
