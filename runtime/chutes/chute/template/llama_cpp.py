"""`build_llama_cpp_chute`: a GGUF model served on CPU (or GPU) by llama-cpp-python's OpenAI-compatible server.

Not in the Chutes platform's SDK: it is the CPU engine that lets a chute built like the vLLM
template's run on a machine with no GPU, with the same cords and the same clients.
"""

from __future__ import annotations

from typing import Any

from chutes.chute.template.engine import split_engine_args
from chutes.chute.template.openai import ENGINE_PORT, OpenAIChute, build_openai_chute
from chutes.image.standard.llama_cpp import LLAMA_CPP
from chutes.node_selector import NodeSelector

__all__ = ["build_llama_cpp_chute", "llama_cpp_command", "OpenAIChute"]
LLAMA_CPP_ROUTES = ("chat", "completions", "models")
# llama-cpp-python's server has no setting for a pooling type, so a chat model's GGUF (which names
# none) embeds per token, not as the one vector /v1/embeddings promises: embeddings are left out


def llama_cpp_command(
    model_path: str, model_name: str, port: int, engine_args: Any = None, *, context_size: int = 2048
) -> list[str]:
    """Returns the command line that serves the GGUF file `model_path` as `model_name` on 127.0.0.1:`port`."""
    return [
        "python", "-m", "llama_cpp.server",
        "--model", model_path, "--model_alias", model_name,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(context_size),
        *split_engine_args(engine_args),
    ]  # fmt: skip


def build_llama_cpp_chute(
    username: str,
    model_name: str,
    model_path: str,
    node_selector: NodeSelector | dict | None = None,
    image: Any = LLAMA_CPP,
    tagline: str = "",
    readme: str = "",
    concurrency: int = 4,
    engine_args: Any = None,
    context_size: int = 2048,
    max_instances: int = 1,
    shutdown_after_seconds: int = 300,
    engine_port: int = ENGINE_PORT,
) -> OpenAIChute:
    """Returns a chute serving `model_path` (a .gguf file) as `model_name`: chat, completions and models.

    With no `node_selector` it asks for no GPU, so any host runs it.
    """
    return build_openai_chute(
        username=username, name=model_name, image=image,
        node_selector=node_selector if node_selector is not None else NodeSelector(gpu_count=0),
        command=llama_cpp_command(model_path, model_name, engine_port, engine_args, context_size=context_size),
        routes=LLAMA_CPP_ROUTES, engine_port=engine_port, standard_template="llama-cpp", tagline=tagline,
        readme=readme, concurrency=concurrency, max_instances=max_instances,
        shutdown_after_seconds=shutdown_after_seconds,
    )  # fmt: skip
