"""Chute files in the shapes SDK users write (tests/compat/shapes/), tried as their authors would:
`chutes cords FILE:chute`, `chutes build --dry-run` (golden text), and `chutes run` plus a call.

Set CHUTES_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import CHUTES, cli_env, start_server  # noqa: F401

HERE = Path(__file__).parent
SHAPES = HERE / "shapes"
GOLDEN = HERE / "golden" / "shapes"

# shape -> (cords as "METHOD /path", jobs): what `chutes cords` must list
LISTED = {
    "lone_list": (["POST /optimized"], []),
    "minimal_schema": (["POST /generate", "POST /echo"], []),
    "robot_policy": (["POST /act"], []),
    "gemma_engine_args": (
        [
            "POST /v1/chat/completions",
            "POST /v1/chat/completions",
            "POST /v1/completions",
            "POST /v1/completions",
            "POST /tokenize",
            "POST /detokenize",
            "GET /v1/models",
        ],
        [],
    ),  # fmt: skip
    "streaming_response": (["POST /stream"], []),
    "ssh_job": ([], ["train"]),
    "platform_base": (["POST /hello"], []),
    "cuda_with_python": (["POST /hello"], []),
    "sdk_imports": (["POST /encode"], []),
    "prebuilt_vllm": (["POST /ping"], []),
    "set_user_pip": (["POST /six"], []),
}


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CHUTES_")}


def copy_shape(name: str, tmp_path: Path) -> Path:
    """Copies a shape file into a fresh project folder, as its author would have it; returns the folder."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    shutil.copy(SHAPES / f"{name}.py", project / f"{name}.py")
    return project


def chutes(*args: str, cwd: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHUTES, *args], cwd=cwd, env={**env(), **(extra_env or {})}, capture_output=True, text=True, timeout=120
    )


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("CHUTES_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the golden file"


@pytest.mark.parametrize("name", sorted(LISTED))
def test_each_shape_imports_and_lists_its_cords_and_jobs(name: str, tmp_path: Path) -> None:
    project = copy_shape(name, tmp_path)
    listed = chutes("cords", f"{name}.py:chute", "--json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    cords, jobs = LISTED[name]
    assert [f"{c['method']} {c['path']}" for c in data["cords"]] == cords
    assert [j["name"] for j in data.get("jobs", [])] == jobs


@pytest.mark.parametrize("name", sorted(LISTED))
def test_each_shape_builds_as_golden_text(name: str, tmp_path: Path) -> None:
    """The Dockerfile of `chutes build --dry-run`, and what it says on stderr about its choices."""
    project = copy_shape(name, tmp_path)
    built = chutes("build", f"{name}.py:chute", "--dry-run", cwd=project)
    assert built.returncode == 0, built.stderr
    notes = "".join(f"# stderr: {line}\n" for line in built.stderr.splitlines())
    check_golden(f"{name}.txt", built.stdout.split("\n# build context")[0] + notes)


def test_a_job_only_chute_is_listed_with_its_job(tmp_path: Path) -> None:
    project = copy_shape("ssh_job", tmp_path)
    listed = chutes("cords", "ssh_job.py:chute", cwd=project, extra_env={"COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    assert "myuser-ssh-job: 0 cord(s), 1 job(s)" in listed.stdout
    assert "2202/tcp (ssh)" in listed.stdout and "**job_data" in listed.stdout


def test_the_lone_list_shape_takes_both_spellings(start_server, tmp_path: Path) -> None:  # noqa: F811
    server = start_server("lone_list.py:chute", cwd=copy_shape("lone_list", tmp_path))
    for body in (["a", "b"], {"texts": ["a", "b"]}):
        answer = httpx.post(f"{server.url}/optimized", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"results": ["A", "B"]}


def test_the_minimal_schema_shape_runs(start_server, tmp_path: Path) -> None:  # noqa: F811
    server = start_server("minimal_schema.py:chute", cwd=copy_shape("minimal_schema", tmp_path))
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.post("/generate", json={"prompt": "a cat"}).json() == {"prompt": "a cat", "steps": 4}
        assert http.post("/echo", json={"prompt": "hi", "times": 2}).json() == {"echo": ["hi", "hi"]}
        assert http.post("/generate", json={"prompt": "a cat", "steps": 0}).status_code == 422
        paths = http.get("/openapi.json").json()["paths"]
        for path in ("/generate", "/echo"):
            assert paths[path]["post"]["x-chutes-minimal-input-schema"] == {"$ref": "#/components/schemas/MinimalInput"}


def test_the_robot_policy_shape_runs(start_server, tmp_path: Path) -> None:  # noqa: F811
    server = start_server("robot_policy.py:chute", cwd=copy_shape("robot_policy", tmp_path))
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.post("/act", json={"joints": [1, 2]}).json() == {"action": [-0.5, -1.0]}
        assert http.post("/act", json={"observation": {"joints": [2]}}).json() == {"action": [-1.0]}


def test_the_streaming_response_shape_streams_its_own_response(start_server, tmp_path: Path) -> None:  # noqa: F811
    server = start_server("streaming_response.py:chute", cwd=copy_shape("streaming_response", tmp_path))
    with httpx.stream("POST", f"{server.url}/stream", json={"prompt": "hello there"}, timeout=10) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        frames = [json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: ")]
    assert frames == [{"token": "hello"}, {"token": "there"}]


def test_the_ssh_job_shape_runs_with_job_data(tmp_path: Path) -> None:
    project = copy_shape("ssh_job", tmp_path)
    ran = chutes("jobs", "run", "ssh_job.py:chute", "train", "--json", '{"steps": 3}', "--dir", "run", cwd=project)
    assert ran.returncode == 0, ran.stderr
    assert json.loads((project / "run" / "result.json").read_text())["result"] == {"steps": 3}
    assert (project / "run" / "outputs" / "log.txt").read_text() == "step 0\nstep 1\nstep 2\n"


def test_the_sdk_imports_shape_runs_and_its_image_gets_them(start_server, tmp_path: Path) -> None:  # noqa: F811
    project = copy_shape("sdk_imports", tmp_path)
    server = start_server("sdk_imports.py:chute", cwd=project)
    assert httpx.post(f"{server.url}/encode", json={"text": "hi"}, timeout=10).json() == {"b64": "aGk="}
    built = chutes("build", "sdk_imports.py:chute", "--dry-run", cwd=project)
    assert built.returncode == 0, built.stderr
    assert "#   " in built.stdout and ".chutes/wheels/sdk/requirements.txt" in built.stdout
    from chutes.loader import load_chute
    from chutes_build.plan import plan_build

    ref = f"{project / 'sdk_imports.py'}:chute"
    plan = plan_build(load_chute(ref), ref, fetch_wheels=False)
    pinned = plan.context.generated[".chutes/wheels/sdk/requirements.txt"].decode().split()
    assert {p.split("==")[0].lower() for p in pinned} >= {"loguru", "pybase64"}
    assert not any(p.lower().startswith(("aiohttp==", "orjson==")) for p in pinned)  # only what it imports


def test_without_the_sdk_extra_the_import_error_says_how_to_get_it(tmp_path: Path, monkeypatch) -> None:
    from chutes.loader import ChuteLoadError, load_chute

    monkeypatch.setitem(sys.modules, "loguru", None)  # as on a machine without chutes[sdk]
    monkeypatch.delitem(sys.modules, "sdk_imports", raising=False)
    project = copy_shape("sdk_imports", tmp_path)
    with pytest.raises(ChuteLoadError) as caught:
        load_chute(f"{project / 'sdk_imports.py'}:chute")
    assert "install it with `pip install 'chutes[sdk]'`" in str(caught.value)
    assert 'sdk_imports.py", line 4' in str(caught.value)  # the user's own line


@pytest.mark.parametrize(
    ("ref", "attr"),
    [("chutes/vllm:0.9.2", "VLLM"), ("chutes/sglang:0.4.9", "SGLANG"), ("parachutes/diffusion:0.33.1", "DIFFUSION")],
)
def test_the_platforms_prebuilt_images_are_this_projects_own(ref: str, attr: str) -> None:
    from chutes.chute import Chute
    from chutes.image import Image

    chute = Chute(username="me", name="x", image=ref)
    assert isinstance(chute.image, Image) and chute.image.name == attr.lower()
    (note,) = chute.ignored
    assert note.startswith(f"image {ref!r} is the platform's prebuilt image") and f"write image={attr}" in note
    assert Chute(username="me", name="x", image="chutes/other:1").image == "chutes/other:1"  # not an engine image
