"""`chutes init`: each template's output passes its own tests, and bad names fail cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chutes_cli.scaffold import template_names

BASIC_MODULE = '''"""demo: a chute with one JSON cord."""

from __future__ import annotations

from chutes.chute import Chute, NodeSelector
from chutes.image import Image

# What `chutes build` puts in the image: the chutes base image ($CHUTES_BASE_IMAGE, if set)
# plus the packages in requirements.txt.
image = Image("ada", "demo", "0.1.0").pip_install("requirements.txt")

# gpu_count=0: runs on any host; a model that needs a GPU asks, e.g. NodeSelector(gpu_count=1, min_vram_gb_per_gpu=24)
chute = Chute(username="ada", name="demo", image=image, node_selector=NodeSelector(gpu_count=0))


@chute.on_startup()
async def load_model(self) -> None:
    # Load weights here, once per process; cords read them from self.
    self.greeting = "Hello"


@chute.cord(public_api_path="/hello")
async def hello(self, name: str = "world") -> dict:
    return {"message": f"{self.greeting}, {name}!"}
'''


@pytest.mark.parametrize("template", template_names())
def test_generated_chute_passes_its_own_tests(chutes, cli_env, tmp_path: Path, template: str):
    name = f"my-{template}-chute"
    result = chutes("init", name, "--template", template, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    target = tmp_path / name
    module = name.replace("-", "_")
    assert {p.name for p in target.iterdir()} >= {f"{module}.py", f"test_{module}.py", "requirements.txt", "README.md"}
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio", "-W", "error"],
        cwd=target,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout


def test_generated_module_text(chutes, tmp_path: Path):
    assert chutes("init", "demo", "--username", "ada", cwd=tmp_path).returncode == 0
    assert (tmp_path / "demo" / "demo.py").read_text() == BASIC_MODULE


@pytest.mark.parametrize("template", template_names())
def test_generated_chute_has_an_image_to_build(chutes, tmp_path: Path, template: str):
    assert chutes("init", "demo", "--template", template, cwd=tmp_path).returncode == 0
    result = chutes(
        "build", "demo:chute", "--dry-run", cwd=tmp_path / "demo", env={"CHUTES_BASE_IMAGE": "example/base:1"}
    )
    assert result.returncode == 0, result.stderr
    assert "Nothing to build" not in result.stderr
    assert "\nFROM example/base:1\n" in result.stdout
    assert 'ENTRYPOINT ["python", "-m", "chutes.serve", "demo:chute"' in result.stdout
    assert ".chutes/wheels/pip-1/requirements.txt" in result.stdout


def test_generated_chute_serves_its_cords(chutes, tmp_path: Path):
    assert chutes("init", "lister", "--dir", str(tmp_path)).returncode == 0
    result = chutes("cords", "lister:chute", "--json", cwd=tmp_path / "lister")
    assert result.returncode == 0, result.stderr
    assert '"path": "/hello"' in result.stdout


def test_existing_directory_is_left_alone(chutes, tmp_path: Path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")
    result = chutes("init", "taken", cwd=tmp_path)
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "taken"]


@pytest.mark.parametrize("name", ["My-Chute", "1chute", "has space", "dots.in.name"])
def test_invalid_name_is_a_usage_error(chutes, tmp_path: Path, name: str):
    result = chutes("init", name, cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid chute name" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_unknown_template_is_a_usage_error(chutes, tmp_path: Path):
    result = chutes("init", "demo", "--template", "nope", cwd=tmp_path)
    assert result.returncode == 2
    assert "basic" in result.stderr


def test_passthrough_template_lists_its_target(chutes, tmp_path: Path):
    assert chutes("init", "relay", "--template", "passthrough", cwd=tmp_path).returncode == 0
    result = chutes("cords", "relay.py:chute", "--json", cwd=tmp_path / "relay", env={"UPSTREAM_PORT": "8123"})
    assert result.returncode == 0, result.stderr
    (cord,) = json.loads(result.stdout)["cords"]
    assert cord["passthrough"] is True
    assert cord["passthrough_target"] == "127.0.0.1:8123/v1/generate"
