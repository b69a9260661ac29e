"""chutes: serve async Python functions as HTTP endpoints.

The public names are also importable from here (`from chutes import Chute, Image`); each is loaded on
first use, so `import chutes` (which the CLI does for every command) stays as cheap as the version.
"""

from __future__ import annotations

__version__ = "0.1.0"

# name -> the module that defines it, at the same import paths as the Chutes platform's SDK
_EXPORTS = {
    "Chute": "chutes.chute",
    "ChutePack": "chutes.chute",
    "Cord": "chutes.chute",
    "Job": "chutes.chute",
    "Port": "chutes.chute",
    "NodeSelector": "chutes.chute",
    "Image": "chutes.image",
    "ChutesError": "chutes.exceptions",
    "build_vllm_chute": "chutes.chute.template.vllm",
    "build_sglang_chute": "chutes.chute.template.sglang",
    "build_llama_cpp_chute": "chutes.chute.template.llama_cpp",
    "build_embedding_chute": "chutes.chute.template.embedding",
    "build_diffusion_chute": "chutes.chute.template.diffusion",
}

__all__ = [
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
]

# typing costs more to import than this whole module; type checkers read the block as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from chutes.chute import Chute, ChutePack, Cord, Job, NodeSelector, Port
    from chutes.chute.template.diffusion import build_diffusion_chute
    from chutes.chute.template.embedding import build_embedding_chute
    from chutes.chute.template.llama_cpp import build_llama_cpp_chute
    from chutes.chute.template.sglang import build_sglang_chute
    from chutes.chute.template.vllm import build_vllm_chute
    from chutes.exceptions import ChutesError
    from chutes.image import Image


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chutes' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
