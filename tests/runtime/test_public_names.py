"""The public surface: what `chutes` exports, that importing it stays cheap, and the cord keywords' types."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing

import pytest

import chutes
from chutes.chute import Chute
from chutes.cord import CordOptions, define_cord

PUBLIC = {
    "__version__",
    "Chute",
    "ChutePack",
    "Cord",
    "Job",
    "Port",
    "NodeSelector",
    "Image",
    "ChutesError",
    "build_vllm_chute",
    "build_sglang_chute",
    "build_llama_cpp_chute",
    "build_embedding_chute",
    "build_diffusion_chute",
}


def test_exported_names() -> None:
    assert set(chutes.__all__) == PUBLIC
    for name in chutes.__all__:
        value = getattr(chutes, name)
        if name != "__version__":
            assert value.__name__ == name
            assert getattr(sys.modules[value.__module__], name) is value


def test_exports_are_the_objects_at_their_own_paths() -> None:
    from chutes.chute import Chute, NodeSelector
    from chutes.chute.template.vllm import build_vllm_chute
    from chutes.image import Image

    assert (chutes.Chute, chutes.NodeSelector, chutes.Image) == (Chute, NodeSelector, Image)
    assert chutes.build_vllm_chute is build_vllm_chute
    assert set(dir(chutes)) >= PUBLIC


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'chutes' has no attribute 'Chutes'"):
        chutes.Chutes  # noqa: B018
    with pytest.raises(ImportError):
        exec("from chutes import Chutes", {})


def test_import_chutes_loads_no_runtime_module() -> None:
    # the CLI imports `chutes` for every command; the names load on first use
    code = "import sys, chutes; print(sorted(m for m in sys.modules if m.startswith(('chutes.', 'pydantic'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cord_options_are_define_cords_keywords() -> None:
    # `Chute.cord(**options: Unpack[CordOptions])`: a keyword define_cord takes but CordOptions lacks
    # would be refused by type checkers, and one CordOptions has but define_cord lacks fails at runtime
    names = {n for n, p in inspect.signature(define_cord).parameters.items() if p.kind is p.KEYWORD_ONLY}
    keywords = {n: t for n, t in typing.get_type_hints(define_cord).items() if n in names}
    assert CordOptions.__optional_keys__ == names
    assert typing.get_type_hints(CordOptions) == keywords
    assert len(keywords) == 15


def test_decorators_return_the_function_unchanged() -> None:
    chute = Chute(username="alice", name="typed", image="alice/typed:1")

    async def generate(self: Chute, prompt: str) -> str:
        return prompt

    async def render(self: Chute, frames: int) -> dict:
        return {}

    assert chute.cord(path="/generate")(generate) is generate
    assert chute.job(timeout=60)(render) is render
    bare = Chute(username="alice", name="bare", image="alice/bare:1")
    assert bare.cord(generate) is generate  # used bare, as @chute.cord


def test_cord_keywords_are_typed() -> None:
    hints = typing.get_type_hints(CordOptions)
    assert hints["stream"] is bool
    assert hints["passthrough_port"] == int | None
