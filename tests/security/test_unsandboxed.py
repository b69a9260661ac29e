"""Without a sandbox the process executor serves one user only, unless the operator says otherwise at start."""

from __future__ import annotations

from pathlib import Path

from tests.host.conftest import make_project


def deploy(host, key: str, project: Path):
    return host.cli("deploy", "host_open:chute", "--public", key=key, cwd=project)


def hello_project(root: Path, user: str) -> Path:
    project = make_project(root / user, "host_open.py")
    path = project / "host_open.py"
    path.write_text(path.read_text().replace('username="alice"', f'username="{user}"'))
    return project


def test_a_second_user_is_refused_and_the_host_says_why(host_factory, tmp_path: Path) -> None:
    host = host_factory("--sandbox", "off")
    assert "WITHOUT a sandbox (the sandbox was turned off (--sandbox off))" in host.log_text()
    assert "only one user may deploy (start with --unsafe-shared-process" in host.log_text()
    alice, bob = host.add_user("alice"), host.add_user("bob")
    assert deploy(host, alice, hello_project(tmp_path, "alice")).returncode == 0
    refused = deploy(host, bob, hello_project(tmp_path, "bob"))
    assert refused.returncode == 1
    assert "serves one user's chutes only" in refused.stderr
    assert "--unsafe-shared-process" in refused.stderr
    assert host.call("alice-open", "/hello", json={"name": "a"}).status_code == 200


def test_the_operator_may_share_the_host_knowingly(host_factory, tmp_path: Path) -> None:
    host = host_factory("--sandbox", "off", "--unsafe-shared-process")
    assert "--unsafe-shared-process lets several users deploy anyway" in host.log_text()
    for user in ("alice", "bob"):
        key = host.add_user(user)
        assert deploy(host, key, hello_project(tmp_path, user)).returncode == 0
        assert host.call(f"{user}-open", "/hello", json={"name": "x"}).json() == {"message": "Hello, x!"}
