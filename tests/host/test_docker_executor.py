"""The docker executor end to end: deploy the example chute, built on the host's engine, and call it.

Needs DOCKER_HOST (see .ci/engine.sh); skips without an engine unless CI is set.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.host.conftest import Host, wait_for

pytestmark = pytest.mark.engine

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stream_chute"


@pytest.fixture(scope="module")
def host(engine, tmp_path_factory) -> Iterator[Host]:  # noqa: ANN001
    from chutes_cli.build.wheel import wheel_cache_dir

    base = tmp_path_factory.mktemp("docker")
    env = {"CHUTES_WHEEL_CACHE": str(wheel_cache_dir())}
    if os.environ.get("CHUTES_BASE_IMAGE"):
        env["CHUTES_BASE_IMAGE"] = os.environ["CHUTES_BASE_IMAGE"]
    host = Host(
        data_dir=base / "data", home=base / "home", port=free_port(), extra_args=["--executor", "docker"], env=env
    )
    host.home.mkdir()
    host.start()
    host.key = host.add_user("myuser")
    host.project = base / "stream_chute"
    shutil.copytree(EXAMPLE, host.project, ignore=shutil.ignore_patterns("__pycache__"))
    yield host
    host.stop()


def containers(engine, slug: str) -> list:  # noqa: ANN001
    # the image itself carries ai.chutes.slug, so also require the label only this host's containers have
    return engine.containers.list(all=True, filters={"label": [f"ai.chutes.slug={slug}", "ai.chutes.host"]})


def test_deploy_builds_on_the_engine_and_serves(host: Host, engine) -> None:  # noqa: ANN001
    result = host.cli("deploy", "stream_chute:chute", key=host.key, cwd=host.project, timeout=600)
    assert result.returncode == 0, result.stderr + host.log_text()
    assert result.stdout.strip() == f"http://myuser-stream-chute.localhost:{host.port}"
    echoed = host.call("myuser-stream-chute", "/echo", key=host.key, json={"text": "hi"})
    assert echoed.status_code == 200
    assert echoed.json()["echo"] == "hi"
    headers = {"Host": f"myuser-stream-chute.localhost:{host.port}", "X-API-Key": host.key}
    with httpx.stream("POST", f"{host.url}/words", json={"text": "a b"}, headers=headers, timeout=30) as resp:
        frames = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]
    assert frames == [{"index": 0, "word": "a"}, {"index": 1, "word": "b"}]
    (container,) = containers(engine, "myuser-stream-chute")
    ports = container.attrs["HostConfig"]["PortBindings"]["8000/tcp"]
    assert ports[0]["HostIp"] == "127.0.0.1"
    assert "localhost/chutes-host/myuser-stream-chute:v1" in container.image.tags


def test_killed_container_is_replaced(host: Host, engine) -> None:  # noqa: ANN001
    (container,) = containers(engine, "myuser-stream-chute")
    container.kill()

    def replaced() -> bool:
        chute = host.api("GET", "/chutes/stream-chute", key=host.key).json()
        inst = chute["instances"][0]
        return inst["phase"] == "ready" and inst["container_id"] != container.id

    wait_for(replaced, timeout=60, what="a new container after the kill")
    assert host.call("myuser-stream-chute", "/echo", key=host.key, json={"text": "back"}).json()["echo"] == "back"


def test_deploy_with_prebuilt_image(host: Host, engine) -> None:  # noqa: ANN001
    result = host.cli(
        "deploy",
        "stream_chute:chute",
        "--image",
        "localhost/chutes-host/myuser-stream-chute:v1",
        key=host.key,
        cwd=host.project,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert host.api("GET", "/chutes/stream-chute", key=host.key).json()["version"] == 2
    wait_for(lambda: len(containers(engine, "myuser-stream-chute")) == 1, timeout=30, what="version 1 to stop")
    assert host.call("myuser-stream-chute", "/echo", key=host.key, json={"text": "v2"}).json()["echo"] == "v2"


def test_restarted_host_runs_the_image_again(host: Host, engine) -> None:  # noqa: ANN001
    (before,) = containers(engine, "myuser-stream-chute")
    host.stop()
    assert containers(engine, "myuser-stream-chute") == []

    host.start()

    def served() -> bool:
        return host.call("myuser-stream-chute", "/echo", key=host.key, json={"text": "again"}).status_code == 200

    wait_for(served, timeout=60, what="the chute to come back after a host restart")
    (after,) = containers(engine, "myuser-stream-chute")
    assert after.id != before.id
    assert "Successfully built" not in (host.data_dir / "chutes/myuser-stream-chute/logs/build.log").read_text()[-200:]


def test_deleting_removes_the_containers(host: Host, engine) -> None:  # noqa: ANN001
    result = host.cli("chutes", "delete", "stream-chute", "--yes", key=host.key)
    assert result.returncode == 0, result.stderr
    assert containers(engine, "myuser-stream-chute") == []
    assert host.call("myuser-stream-chute", "/echo", key=host.key, json={"text": "x"}).status_code == 404
    assert not any("chutes-host/myuser-stream-chute" in tag for image in engine.images.list() for tag in image.tags)


def test_container_asks_the_engine_for_exactly_its_gpus(engine, tmp_path: Path) -> None:  # noqa: ANN001
    """Checks the request the executor sends, on the real engine.

    This engine has no NVIDIA runtime, so it refuses any GPU request when a container starts: the
    request is read back from a container the executor created but did not start, and starting one
    is checked to fail with a message that says why.
    """
    import asyncio
    import io

    import docker.errors

    from chutes_host.config import HostConfig
    from chutes_host.executors import ExecutorError
    from chutes_host.executors.docker import IMAGE_FILE, DockerExecutor
    from chutes_host.gpus import load_inventory
    from chutes_host.spec import DeploymentSpec

    base = os.environ.get("CHUTES_BASE_IMAGE") or "localhost/chutes-base:bookworm"
    try:
        engine.images.get(base)
    except docker.errors.ImageNotFound:
        pytest.skip(f"{base} is not on the engine (bash .ci/engine.sh builds it)")
    ref = "localhost/chutes-tests/gpu-request:1"
    dockerfile = io.BytesIO(f'FROM {base}\nCMD ["sleep", "60"]\n'.encode())
    engine.images.build(fileobj=dockerfile, tag=ref, rm=True)
    spec = DeploymentSpec(
        slug="alice-gpu", name="gpu", owner_id=1, owner_name="alice", version=1,
        directory=tmp_path / "alice-gpu" / "1", entrypoint="gpu:chute", public=False, max_instances=1,
    )  # fmt: skip
    spec.directory.mkdir(parents=True)
    (spec.directory / IMAGE_FILE).write_text(ref + "\n")
    gpus = load_inventory("NVIDIA A100:80@GPU-aaaa,NVIDIA A100:80@GPU-bbbb").gpus
    executor = DockerExecutor(HostConfig(data_dir=tmp_path / "data"))
    try:
        created = [executor.create(spec, 0, ref, port=free_port(), gpus=gpus)]
        created.append(executor.create(spec, 1, ref, port=free_port(), gpus=()))
        with_gpus, cpu = (engine.containers.get(c.id).attrs for c in created)
        (request,) = with_gpus["HostConfig"]["DeviceRequests"]
        assert request["DeviceIDs"] == ["GPU-aaaa", "GPU-bbbb"]
        assert request["Capabilities"] == [["gpu"]]
        assert request["Count"] == 0  # exactly these devices, not "any N"
        assert "NVIDIA_VISIBLE_DEVICES=GPU-aaaa,GPU-bbbb" in with_gpus["Config"]["Env"]
        assert not cpu["HostConfig"].get("DeviceRequests")
        assert "NVIDIA_VISIBLE_DEVICES=void" in cpu["Config"]["Env"]
        assert "CUDA_VISIBLE_DEVICES=" in cpu["Config"]["Env"]
        for container in created:
            container.remove(force=True)

        if "nvidia" not in (engine.info().get("Runtimes") or {}):
            with pytest.raises(ExecutorError, match="the engine has no NVIDIA runtime"):
                asyncio.run(executor.start(spec, 0, tmp_path / "instance-0.log", gpus=gpus))
            # the refused container is not left behind
            assert engine.containers.list(all=True, filters={"label": "ai.chutes.slug=alice-gpu"}) == []
    finally:
        asyncio.run(executor.aclose())
        engine.images.remove(ref)
