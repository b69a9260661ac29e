"""A sandboxed instance stops gracefully: its shutdown hooks run when the host stops it."""

from __future__ import annotations

from pathlib import Path

CHUTE = """
from pathlib import Path

from chutes.chute import Chute, NodeSelector

chute = Chute(username="alice", name="hooks", image="tests/hooks", node_selector=NodeSelector(gpu_count=0))


@chute.on_shutdown()
async def say_goodbye(self) -> None:
    Path("goodbye.txt").write_text("shut down cleanly")


@chute.cord(public_api_path="/hi")
async def hi(self) -> dict:
    return {"hi": True}
"""


def test_shutdown_hooks_run_when_the_host_stops(host_factory, tmp_path: Path) -> None:
    host = host_factory()
    key = host.add_user("alice")
    project = tmp_path / "project"
    project.mkdir()
    (project / "hooks.py").write_text(CHUTE)
    deployed = host.cli("deploy", "hooks:chute", key=key, cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    assert host.call("alice-hooks", "/hi", key=key, json={}).json() == {"hi": True}
    host.stop()
    goodbye = host.data_dir / "chutes" / "alice-hooks" / "1" / "app" / "goodbye.txt"
    assert goodbye.read_text() == "shut down cleanly"
