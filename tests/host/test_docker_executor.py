"""The docker executor end to end: deploy the example chute, built on the host's engine, and call it.

Needs DOCKER_HOST (see .ci/engine.sh); skips without an engine unless CI is set.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import httpx
import pytest

from tests.host.conftest import Host, docker_host, make_project, wait_for

pytestmark = pytest.mark.engine

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stream_chute"


@pytest.fixture(scope="module")
def host(engine, tmp_path_factory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("docker")
    host = docker_host(base)
    host.key = host.add_user("myuser")
    host.project = base / "stream_chute"
    shutil.copytree(EXAMPLE, host.project, ignore=shutil.ignore_patterns("__pycache__"))
    yield host
    host.stop()


def owner(host: Host) -> str:
    """The label value that marks what this host made on the shared engine."""
    return hashlib.sha256(str(host.data_dir.resolve()).encode()).hexdigest()[:16]


def image_tags(host: Host, engine, slug: str) -> list[str]:
    """The tags this host gave its images of the chute (the same image may carry other hosts' tags)."""
    prefix = f"localhost/chutes-host/{owner(host)[:12]}/{slug}:"
    return sorted(t for image in engine.images.list() for t in image.tags if t.startswith(prefix))


def containers(engine, slug: str, host: Host) -> list:
    # the image itself carries ai.chutes.slug, so also require the label only this host's containers have
    # (other hosts on a shared engine may run a chute of the same name)
    owned = f"ai.chutes.host={owner(host)}"
    filters = {"label": [f"ai.chutes.slug={slug}", owned]}
    for _ in range(20):
        try:
            return engine.containers.list(all=True, filters=filters)
        except docker.errors.NotFound:  # one was removed between the engine's listing and its inspection
            time.sleep(0.1)
    return engine.containers.list(all=True, filters=filters)


def test_deploy_builds_on_the_engine_and_serves(host: Host, engine) -> None:
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
    (container,) = containers(engine, "myuser-stream-chute", host)
    (tag,) = image_tags(host, engine, "myuser-stream-chute")
    assert tag in container.image.tags and tag.endswith(":v1")


def test_container_is_confined(host: Host, engine) -> None:
    (container,) = containers(engine, "myuser-stream-chute", host)
    config = container.attrs["HostConfig"]
    assert not config["PortBindings"]  # the host reaches it on its own network, nothing is published
    assert config["CapDrop"] == ["ALL"] and not config["CapAdd"]
    assert config["SecurityOpt"] == ["no-new-privileges"]
    assert config["Memory"] == 8 << 30 and config["PidsLimit"] == 1024
    assert config["ReadonlyRootfs"] is True and set(config["Tmpfs"]) == {"/tmp", "/home/chutes"}
    # nothing of the host's is bound in: a shared host hands no socket over (no stream handoff)
    assert container.attrs["Mounts"] == []
    assert container.attrs["Config"]["User"] == "1000:1000"
    (name,) = container.attrs["NetworkSettings"]["Networks"]
    network = engine.networks.get(name)
    assert network.attrs["Internal"] is True  # the example does not ask for external egress
    assert name.endswith("-myuser-stream-chute") and name != "bridge"


def test_a_stream_is_relayed_on_a_shared_host(host: Host, engine) -> None:
    """A host not declared single-tenant relays streams: the client's connection stays the host's."""
    assert host.call("myuser-stream-chute", "/echo", key=host.key, json={"text": "warm"}).status_code == 200
    resp = host.call("myuser-stream-chute", "/words", key=host.key, json={"text": "x y z"})  # the key, cached
    assert resp.status_code == 200, resp.text
    assert resp.text.count("data: ") == 3
    assert resp.headers.get("connection") != "close"  # relayed: the connection is kept for the next request


def test_killed_container_is_replaced(host: Host, engine) -> None:
    (container,) = containers(engine, "myuser-stream-chute", host)
    container.kill()

    def replaced() -> bool:
        chute = host.api("GET", "/chutes/stream-chute", key=host.key).json()
        inst = chute["instances"][0]
        return inst["phase"] == "ready" and inst["container_id"] != container.id

    wait_for(replaced, timeout=60, what="a new container after the kill")
    assert host.call("myuser-stream-chute", "/echo", key=host.key, json={"text": "back"}).json()["echo"] == "back"


def test_deploy_with_prebuilt_image(host: Host, engine) -> None:
    (v1,) = image_tags(host, engine, "myuser-stream-chute")
    result = host.cli(
        "deploy",
        "stream_chute:chute",
        "--image",
        v1,
        key=host.key,
        cwd=host.project,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert host.api("GET", "/chutes/stream-chute", key=host.key).json()["version"] == 2
    wait_for(lambda: len(containers(engine, "myuser-stream-chute", host)) == 1, timeout=30, what="version 1 to stop")
    assert host.call("myuser-stream-chute", "/echo", key=host.key, json={"text": "v2"}).json()["echo"] == "v2"
    # version 2 holds the image by a tag of its own; retiring version 1 dropped only version 1's tag
    assert image_tags(host, engine, "myuser-stream-chute") == [v1.replace(":v1", ":v2")]


def test_image_of_another_users_chute_is_refused(host: Host, engine, tmp_path: Path) -> None:
    (v2,) = image_tags(host, engine, "myuser-stream-chute")
    alice = host.add_user("alice")
    project = make_project(tmp_path / "alice", "host_hello.py")
    result = host.cli("deploy", "host_hello:chute", "--image", v2, key=alice, cwd=project, timeout=120)
    assert result.returncode != 0
    assert "belongs to another chute" in result.stderr
    image_id = engine.images.get(v2).id
    for ref in (image_id, image_id.split(":")[1][:12]):  # the engine would resolve an id to the same image
        result = host.cli("deploy", "host_hello:chute", "--image", ref, key=alice, cwd=project, timeout=120)
        assert result.returncode != 0
        assert "looks like an image id" in result.stderr
    assert containers(engine, "alice-hello", host) == []
    assert host.cli("chutes", "delete", "hello", "--yes", key=alice).returncode == 0


def test_deleting_a_chute_while_it_builds_ends_the_build(host: Host, engine, tmp_path: Path) -> None:
    project = make_project(tmp_path / "slow", "slow_build.py")
    result = host.cli("deploy", "slow_build:chute", "--no-wait", key=host.key, cwd=project, timeout=120)
    assert result.returncode == 0, result.stderr
    build_log = host.data_dir / "chutes/myuser-slow-build/logs/build.log"
    wait_for(
        lambda: build_log.is_file() and "slow-build-tick 2" in build_log.read_text(),
        timeout=120,
        what="the slow build to run",
        host=host,
    )

    def builders() -> list:
        return [c for c in engine.containers.list() if "slow-build-tick" in str(c.attrs["Config"]["Cmd"])]

    assert builders()
    assert host.cli("chutes", "delete", "slow-build", "--yes", key=host.key).returncode == 0
    # the RUN step would go on for five minutes: its container goes away only if the engine aborted the build
    wait_for(lambda: not builders(), timeout=60, what="the engine to abort the build")
    assert image_tags(host, engine, "myuser-slow-build") == []


def test_restarted_host_runs_the_image_again(host: Host, engine) -> None:
    (before,) = containers(engine, "myuser-stream-chute", host)
    build_log = host.data_dir / "chutes/myuser-stream-chute/logs/build.log"
    built = build_log.read_text()
    host.stop()
    assert containers(engine, "myuser-stream-chute", host) == []

    # Back as a single-tenant host, which hands streams to their containers.
    host.extra_args += ["--single-tenant", "--stream-handoff"]
    host.start()

    def served() -> bool:
        return host.call("myuser-stream-chute", "/echo", key=host.key, json={"text": "again"}).status_code == 200

    wait_for(served, timeout=60, what="the chute to come back after a host restart")
    (after,) = containers(engine, "myuser-stream-chute", host)
    assert after.id != before.id
    (v2,) = image_tags(host, engine, "myuser-stream-chute")
    assert v2.endswith(":v2") and v2 in after.image.tags
    assert build_log.read_text() == built  # the image was there: nothing was built or pulled

    # one bind: the directory of its stream handoff socket, read-only, alone in it
    (mount,) = after.attrs["Mounts"]
    assert (mount["Destination"], mount["RW"]) == ("/run/chutes-handoff", False)
    assert Path(mount["Source"]).name.startswith("handoff-")
    # the instance connected once; the listener is gone
    wait_for(lambda: not Path(mount["Source"]).exists(), timeout=30, what="the handoff listener to go", host=host)
    assert host.call("myuser-stream-chute", "/echo", key=host.key, json={"text": "warm"}).status_code == 200
    # the stream's client connection is the instance's, and ends with the stream
    resp = host.call("myuser-stream-chute", "/words", key=host.key, json={"text": "x y z"})
    assert resp.status_code == 200, resp.text
    assert resp.text.count("data: ") == 3
    assert resp.headers["connection"] == "close"  # handed over: a relayed answer keeps the connection


def test_deleting_removes_the_containers(host: Host, engine) -> None:
    result = host.cli("chutes", "delete", "stream-chute", "--yes", key=host.key)
    assert result.returncode == 0, result.stderr
    assert containers(engine, "myuser-stream-chute", host) == []
    assert host.call("myuser-stream-chute", "/echo", key=host.key, json={"text": "x"}).status_code == 404
    assert image_tags(host, engine, "myuser-stream-chute") == []
    labels = ["ai.chutes.slug=myuser-stream-chute", f"ai.chutes.host={owner(host)}"]
    assert engine.networks.list(filters={"label": labels}) == []


def test_container_asks_the_engine_for_exactly_its_gpus(engine, tmp_path: Path) -> None:
    """Checks the request the executor sends, on the real engine.

    This engine has no NVIDIA runtime, so it refuses any GPU request when a container starts: the
    request is read back from a container the executor created but did not start, and starting one
    is checked to fail with a message that says why.
    """
    import asyncio
    import io

    import docker.errors

    from chutes_host.config import HostConfig
    from chutes_host.deploy.spec import DeploymentSpec
    from chutes_host.executors import ExecutorError
    from chutes_host.executors.docker import DockerExecutor, version_tag
    from chutes_host.scheduling.gpus import load_inventory

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
    gpus = load_inventory("NVIDIA A100:80@GPU-aaaa,NVIDIA A100:80@GPU-bbbb").gpus
    executor = DockerExecutor(HostConfig(data_dir=tmp_path / "data"))
    try:
        created = [executor.create(spec, 0, ref, gpus=gpus)]
        created.append(executor.create(spec, 1, ref, gpus=()))
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
            engine.images.get(ref).tag(version_tag(spec, executor.owner))
            with pytest.raises(ExecutorError, match="the engine has no NVIDIA runtime"):
                asyncio.run(executor.start(spec, 0, tmp_path / "instance-0.log", gpus=gpus))
            # the refused container is not left behind
            assert engine.containers.list(all=True, filters={"label": "ai.chutes.slug=alice-gpu"}) == []
    finally:
        asyncio.run(executor.discard(spec))  # its network too: leaked ones exhaust the engine's address pools
        asyncio.run(executor.aclose())
        for tag in (ref, version_tag(spec, executor.owner)):
            with contextlib.suppress(docker.errors.ImageNotFound):
                engine.images.remove(tag)
