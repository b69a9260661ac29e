"""The SDK's import paths exist, today's still work, and the public names are pinned."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import chutes

SDK_PATHS = {
    "chutes.chute": ["Chute", "ChutePack", "Cord", "Job", "NodeSelector", "Port"],
    "chutes.chute.cord": ["Cord"],
    "chutes.chute.job": ["Job", "Port"],
    "chutes.chute.node_selector": ["NodeSelector"],
    "chutes.chute.template": ["build_vllm_chute"],
    "chutes.chute.template.vllm": ["build_vllm_chute"],
    "chutes.chute.template.sglang": ["build_sglang_chute"],
    "chutes.chute.template.embedding": ["build_embedding_chute"],
    "chutes.chute.template.diffusion": ["build_diffusion_chute"],
    "chutes.image": ["Image"],
    "chutes.image.standard": ["VLLM"],
    "chutes.image.standard.vllm": ["VLLM"],
    "chutes.image.standard.sglang": ["SGLANG"],
    "chutes.image.standard.diffusion": ["DIFFUSION"],
    "chutes.exception": [
        "InvalidPath",
        "DuplicatePath",
        "AuthenticationRequired",
        "NotConfigured",
        "StillProvisioning",
    ],
}


@pytest.mark.parametrize("module", sorted(SDK_PATHS))
def test_sdk_import_paths(module: str) -> None:
    imported = importlib.import_module(module)
    for name in SDK_PATHS[module]:
        assert hasattr(imported, name), f"{module} has no {name}"
        assert name in imported.__all__


def test_public_names_are_pinned() -> None:
    import chutes.chute
    import chutes.image

    assert chutes.chute.__all__ == ["Chute", "ChutePack", "Cord", "Job", "NodeSelector", "Port", "NAME_PATTERN"]
    assert set(chutes.image.__all__) == {
        "Add", "AptInstall", "Directive", "Entrypoint", "Env", "Image", "Label", "PIP_PATTERN",
        "PipInstall", "REF_PATTERN", "RunCommand", "User", "Workdir",
    }  # fmt: skip


def test_earlier_import_paths_still_work() -> None:
    from chutes.chute import Chute
    from chutes.chute.base import Chute as BaseChute
    from chutes.cord import Cord, define_cord  # noqa: F401
    from chutes.image import Image, PipInstall  # noqa: F401
    from chutes.node_selector import NodeSelector, gpu_type_matches  # noqa: F401

    assert Chute is BaseChute


def test_exceptions_share_the_tree() -> None:
    from chutes.exception import DuplicatePath, InvalidPath, StillProvisioning
    from chutes.exceptions import ChutesError, CordDefinitionError

    assert issubclass(InvalidPath, CordDefinitionError) and issubclass(DuplicatePath, CordDefinitionError)
    assert issubclass(InvalidPath, ValueError) and issubclass(StillProvisioning, ChutesError)


def test_the_package_ships_py_typed() -> None:
    assert (Path(chutes.__file__).parent / "py.typed").is_file()
