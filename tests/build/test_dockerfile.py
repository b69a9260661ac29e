"""Golden-text tests of rendered Dockerfiles: whole files compared, and rendering is deterministic.

Set CHUTES_UPDATE_GOLDEN=1 to rewrite the golden files after an intended template change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chutes.image import Image
from chutes_build.dockerfile import ChuteSpec, quote_value, render_dockerfile, render_dockerignore, render_run

GOLDEN = Path(__file__).parent / "golden"
WHEEL = "chutes-0.1.0-py3-none-any.whl"
SPEC = ChuteSpec(
    slug="myuser-demo",
    module="pkg.app",
    attr="chute",
    cords=(
        {"name": "echo", "path": "/echo", "method": "POST", "stream": False, "passthrough": False},
        {"name": "words", "path": "/words", "method": "POST", "stream": True, "passthrough": False},
    ),
    node_selector={"gpu_count": 2, "min_vram_gb_per_gpu": 24},
)


def minimal() -> Image:
    return Image("myuser", "demo", "1.0")


def full() -> Image:
    return (
        Image("myuser", "demo", "1.0")
        .from_base("python:3.11-slim-bookworm")
        .apt_install("git libgl1")
        .pip_install(["numpy>=1.26", "pillow==10.3.0"])
        .with_env("GREETING", 'hello "world" from $HOME \\ back')
        .run_command("set -x\necho one && echo two\n")
        .run_command(["python", "-c", "print('exec form')"])
        .add("weights/tiny model.bin", "/opt/weights/tiny model.bin")
        .set_workdir("/srv")
        .with_label("org.example.team", "ml platform")
        .set_user("worker")
    )


def custom_entrypoint() -> Image:
    return (
        Image("myuser", "demo", "1.0")
        .from_base("localhost/cuda-python:12")
        .pip_install("requirements.txt")
        .pip_install("torch==2.3.1")
        .with_entrypoint("python", "-m", "vllm.entrypoints.openai.api_server")
    )


PROGRAMS = {"minimal": minimal, "full": full, "custom_entrypoint": custom_entrypoint}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("CHUTES_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the golden file; see the diff above"


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_dockerfile_matches_golden_text(name: str) -> None:
    text = render_dockerfile(SPEC, PROGRAMS[name](), runtime_wheel=WHEEL)
    check_golden(f"{name}.Dockerfile", text)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_rendering_is_deterministic(name: str) -> None:
    first = render_dockerfile(SPEC, PROGRAMS[name](), runtime_wheel=WHEEL)
    second = render_dockerfile(SPEC, PROGRAMS[name](), runtime_wheel=WHEEL)
    assert first.encode() == second.encode()


def test_base_image_option_wins_over_from_base() -> None:
    text = render_dockerfile(SPEC, full(), runtime_wheel=WHEEL, base_image="localhost/other:1")
    assert "\nFROM localhost/other:1\n" in text
    assert "python:3.11-slim-bookworm" not in text


def test_python_version_is_checked_in_the_image() -> None:
    text = render_dockerfile(SPEC, minimal(), runtime_wheel=WHEEL, python_version="3.12")
    assert "v == '3.12'" in text and "pass --python ' + v" in text


def test_dockerignore_matches_golden_text() -> None:
    text = render_dockerignore([".git", "*.pyc", "# comment", "", "/data/raw/", "!keep.pyc", "notes/**/*.md"])
    check_golden("dockerignore", text)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", '"plain"'),
        ("two words", '"two words"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("$HOME and ${PATH}", '"\\$HOME and \\${PATH}"'),
        ("back\\slash", '"back\\\\slash"'),
        ("", '""'),
    ],
)
def test_env_and_label_values_are_quoted_literally(value: str, quoted: str) -> None:
    assert quote_value(value) == quoted


def test_run_uses_shell_form_for_one_line_and_exec_form_otherwise() -> None:
    assert render_run("echo hi && echo there") == "echo hi && echo there"
    assert render_run("a\nb") == '["/bin/sh", "-ec", "a\\nb"]'
    assert render_run("[ -f x ] || touch x") == '["/bin/sh", "-ec", "[ -f x ] || touch x"]'
    assert render_run(("echo", "it's")) == '["echo", "it\'s"]'
