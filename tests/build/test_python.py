"""Which Python a build fetches wheels for: --python, with_python, the base image's tag, or the image itself."""

from __future__ import annotations

import sys

import pytest

from chutes.image import Image
from chutes_build.python import choose_python, python_from_tag, python_notes

HERE = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.parametrize(
    ("ref", "version"),
    [
        ("parachutes/python:3.12", "3.12"),
        ("parachutes/base-python:3.12.9", "3.12"),
        ("python:3.10-slim-bookworm", "3.10"),
        ("localhost:5000/python:3.13", "3.13"),
        ("org/cuda:12.4-py3.11", "3.11"),
        ("org/torch:2.3.1-python3.10-cuda12", "3.10"),
        ("nvidia/cuda:12.4.1-runtime-ubuntu22.04", None),
        ("localhost/chutes-base:bookworm", None),
        ("org/app:3.12", None),  # a version tag of an image not named for Python is its own version
        ("python", None),
        ("localhost:5000/python", None),
    ],
)
def test_the_python_a_tag_names(ref: str, version: str | None) -> None:
    assert python_from_tag(ref) == version


def test_the_choice_and_why() -> None:
    plain = Image("me", "x", "1")
    assert choose_python("3.10", plain, "python:3.12-slim", "base").describe() == (
        "Python 3.10 for the wheels: from --python"
    )
    assert choose_python(None, Image("me", "x", "1").with_python("3.12"), None, "base").reason == (
        "from with_python('3.12')"
    )
    assert choose_python(None, Image("me", "x", "1").from_base("parachutes/python:3.12"), None, "b").version == "3.12"
    assert choose_python(None, plain, None, "base").version == HERE
    unknown = choose_python(None, plain, "nvidia/cuda:12.4.1-runtime-ubuntu22.04", "base")
    assert (unknown.version, unknown.known) == (HERE, False)
    assert "does not say, so the build asks the image" in unknown.reason


def test_with_python_on_a_base_that_may_lack_it_is_named() -> None:
    cuda = Image("me", "x", "1").from_base("nvidia/cuda:12.4.1-runtime-ubuntu22.04").with_python("3.11")
    (note,) = python_notes(cuda, None)
    assert "with_python('3.11') does not install Python here" in note and "must have python3 3.11" in note
    (clash,) = python_notes(Image("me", "x", "1").from_base("parachutes/python:3.12").with_python("3.11"), None)
    assert "says Python 3.12" in clash
    assert python_notes(Image("me", "x", "1").with_python("3.11"), None) == []  # python:3.11-slim has it
    assert python_notes(Image("me", "x", "1").from_base("python:3.11-slim").with_python("3.11"), None) == []
