"""Issue 8: two passthrough chutes on the same passthrough_port are each answered by their own upstream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.host.conftest import FIXTURES, Host


@pytest.fixture
def host(tmp_path: Path, sandbox_available) -> Iterator[Host]:
    host = Host(data_dir=tmp_path / "data", home=tmp_path / "home", port=free_port(), extra_args=["--sandbox", "bwrap"])
    host.home.mkdir()
    yield host.start()
    host.stop()


def deploy_upstream(host: Host, tmp_path: Path, user: str, key: str) -> None:
    project = tmp_path / f"project-{user}"
    project.mkdir()
    source = (FIXTURES / "upstream_pair.py").read_text()
    source = source.replace('username="alice"', f'username="{user}"').replace('NAME = "first"', f'NAME = "{user}"')
    (project / "upstream_pair.py").write_text(source)
    deployed = host.cli("deploy", "upstream_pair:chute", key=key, cwd=project)
    assert deployed.returncode == 0, deployed.stderr


def test_each_chute_is_answered_by_its_own_upstream(host: Host, tmp_path: Path) -> None:
    keys = {user: host.add_user(user) for user in ("alice", "bob")}
    for user, key in keys.items():
        deploy_upstream(host, tmp_path, user, key)
    for _ in range(3):
        for user, key in keys.items():
            resp = host.call(f"{user}-upstream", "/who", key=key, json={})
            assert resp.status_code == 200, resp.text
            assert resp.text == user
