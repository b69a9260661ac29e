"""End to end on a real Docker-API engine: build the example chute, run it, call its cords,
rebuild after a code edit from cache, push to a local registry and pull back, and the errors.

Needs DOCKER_HOST (see .ci/engine.sh); skips without an engine unless CI is set.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import docker.errors
import httpx
import pytest

from chutes_cli.container import free_port, start_chute, stop_chute, wait_until_ready
from tests.build.conftest import CHUTES

pytestmark = pytest.mark.engine

TAG = "localhost/chutes-e2e/stream-chute:test"
REGISTRY = os.environ.get("CHUTES_TEST_REGISTRY", "127.0.0.1:5000")


def step_cache_report(stderr: str) -> list[tuple[str, bool]]:
    """Reads (instruction, cached) per step from the build display."""
    steps: list[tuple[str, bool]] = []
    for line in stderr.splitlines():
        match = re.match(r"^Step \d+/\d+ : (.*)$", line)
        if match:
            steps.append((match.group(1), False))
        elif line.strip() == "(cached)" and steps:
            steps[-1] = (steps[-1][0], True)
    return steps


@pytest.fixture
def running(engine):
    """Starts images and always stops them."""
    started = []

    def start(ref: str):
        chute = start_chute(engine, ref, port=free_port())
        started.append(chute)
        wait_until_ready(chute, timeout=60)
        return chute

    yield start
    for chute in started:
        stop_chute(chute)


def call_cords(url: str, version: int) -> None:
    with httpx.Client(base_url=url, timeout=10) as http:
        echoed = http.post("/echo", json={"text": "hi there"}).json()
        assert echoed == {"echo": "hi there", "greeting": 'Hello, "$USER" and friends', "version": version}
        with http.stream("POST", "/words", json={"text": "one two three", "delay": 0.05}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            frames = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
        assert frames == [{"index": 0, "word": "one"}, {"index": 1, "word": "two"}, {"index": 2, "word": "three"}]


def test_build_run_rebuild_push_and_pull(engine, chutes, example: Path, running) -> None:
    built = chutes("build", "stream_chute:chute", "--tag", TAG, cwd=example)
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == TAG
    assert "preparing the build context and its wheels" in built.stderr  # not silent while wheels download

    image = engine.images.get(TAG)
    labels = image.labels
    assert labels["ai.chutes.slug"] == "myuser-stream-chute"
    assert [c["path"] for c in json.loads(labels["ai.chutes.cords"])] == ["/echo", "/words"]
    assert json.loads(labels["ai.chutes.node-selector"])["gpu_count"] == 0
    assert labels["org.example.team"] == "examples"
    config = image.attrs["Config"]
    assert config["User"] == "chutes"
    assert "/_ready" in " ".join(config["Healthcheck"]["Test"])

    chute = running(TAG)
    call_cords(chute.url, version=1)
    assert chute.container.exec_run("id -u").output.strip() == b"1000"
    assert chute.container.attrs["HostConfig"]["PortBindings"]["8000/tcp"][0]["HostIp"] == "127.0.0.1"

    source = example / "stream_chute.py"
    edited = source.read_text().replace('"version": 1', '"version": 2')
    source.write_text(edited + f"# edit {uuid.uuid4().hex}\n")  # new bytes every run: no stale cache hit
    rebuilt = chutes("build", "stream_chute:chute", "--tag", TAG, cwd=example)
    assert rebuilt.returncode == 0, rebuilt.stderr
    steps = step_cache_report(rebuilt.stderr)
    code_step = next(i for i, (instruction, _) in enumerate(steps) if instruction.startswith("COPY app/"))
    assert all(cached for _, cached in steps[1:code_step]), steps  # step 1 is FROM
    assert not steps[code_step][1], "the edited code must not come from cache"
    assert any("pip install" in instruction for instruction, _ in steps[1:code_step])
    call_cords(running(TAG).url, version=2)

    pushed = chutes("build", "stream_chute:chute", "--tag", TAG, "--push", REGISTRY, cwd=example)
    assert pushed.returncode == 0, pushed.stderr
    assert (
        f"pushing {TAG} to {REGISTRY} ..." in pushed.stderr and f"pushing {TAG} to {REGISTRY}: done in" in pushed.stderr
    )
    remote = pushed.stdout.strip()
    assert remote == f"{REGISTRY}/chutes-e2e/stream-chute:test"
    built_id = engine.images.get(TAG).id
    engine.images.remove(remote)
    assert engine.images.pull(remote).id == built_id


def test_a_fresh_scaffold_builds_and_serves(engine, chutes, tmp_path: Path, running) -> None:
    assert chutes("init", "scaffolded", "--username", "tester", cwd=tmp_path).returncode == 0
    tag = "localhost/chutes-e2e/scaffolded:test"
    built = chutes("build", "scaffolded:chute", "--tag", tag, cwd=tmp_path / "scaffolded")
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == tag
    chute = running(tag)
    assert httpx.post(f"{chute.url}/hello", json={"name": "Ada"}, timeout=10).json() == {"message": "Hello, Ada!"}


def test_run_image_command_serves_on_127_0_0_1(engine, chutes, example: Path) -> None:
    source = example / "stream_chute.py"
    source.write_text(source.read_text().replace("NodeSelector(gpu_count=0)", "NodeSelector(gpu_count=1)"))
    built = chutes("build", "stream_chute:chute", "--tag", TAG, cwd=example)
    assert built.returncode == 0, built.stderr
    port = free_port()
    started = chutes("run-image", "stream_chute:chute", "--tag", TAG, "--port", str(port), "--detach", cwd=example)
    assert started.returncode == 0, started.stderr
    container = engine.containers.get(started.stdout.strip())
    try:
        assert f"ready at http://127.0.0.1:{port}" in started.stderr
        assert "asks for 1 GPU(s) but the engine has none" in started.stderr
        call_cords(f"http://127.0.0.1:{port}", version=1)
    finally:
        container.remove(force=True)


def test_a_failing_run_step_shows_the_step_and_its_last_lines(engine, chutes, write_chute) -> None:
    program = 'Image("tester", "failing", "1").run_command("echo preparing; echo broken thing >&2; exit 3")'
    root = write_chute("failing", program)
    result = chutes("build", "failing:chute", "--tag", "localhost/chutes-e2e/failing:test", cwd=root)
    assert result.returncode == 1
    error = result.stderr[result.stderr.index("Error: ") :]
    assert error.startswith("Error: building localhost/chutes-e2e/failing:test failed at step")
    assert "RUN echo preparing; echo broken thing >&2; exit 3" in error
    assert "returned a non-zero code: 3" in error
    assert "| preparing" in error and "| broken thing" in error


def test_a_missing_base_image_is_not_pulled_and_names_the_fix(engine, chutes, example: Path) -> None:
    result = chutes("build", "stream_chute:chute", "--base-image", "localhost/chutes-no-such-base:1", cwd=example)
    assert result.returncode == 1
    assert "Error: the base image 'localhost/chutes-no-such-base:1' is not on the engine" in result.stderr
    assert "never pulls" in result.stderr and "Dockerfile.base" in result.stderr


def test_a_bad_registry_is_a_clear_error(engine, chutes, example: Path) -> None:
    result = chutes("build", "stream_chute:chute", "--tag", TAG, "--push", f"127.0.0.1:{free_port()}", cwd=example)
    assert result.returncode == 1
    assert "Error: pushing" in result.stderr and "Check that the registry runs" in result.stderr


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)], ids=["sigterm", "ctrl-c"])
def test_run_image_in_the_foreground_stops_and_removes_its_container(
    engine, build_env, example: Path, sig: int, code: int
) -> None:
    built = subprocess.run(
        [CHUTES, "build", "stream_chute:chute", "--tag", TAG],
        cwd=example,
        env=build_env,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    port = free_port()
    args = [CHUTES, "run-image", "stream_chute:chute", "--tag", TAG, "--port", str(port)]
    with subprocess.Popen(args, cwd=example, env=build_env, stderr=subprocess.PIPE, text=True) as process:
        run_in_foreground(engine, process, port, sig=sig, code=code)


def run_in_foreground(engine, process: subprocess.Popen, port: int, *, sig: int, code: int) -> None:
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            lines.append(line)
            if "ready at" in line or not line:
                break
        assert f"ready at http://127.0.0.1:{port}" in "".join(lines), "".join(lines)
        call_cords(f"http://127.0.0.1:{port}", version=1)
        started = [c for c in engine.containers.list() if c.ports.get("8000/tcp", [{}])[0].get("HostPort") == str(port)]
        assert len(started) == 1
        process.send_signal(sig)
        assert process.wait(timeout=30) == code
        rest = process.stderr.read()
        assert "Stopped." in rest and "Traceback" not in rest
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(started[0].id)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
