"""`build_sglang_chute`: a model served by SGLang's OpenAI-compatible server, with the SDK's arguments."""

from __future__ import annotations

from typing import Any

from chutes.chute.template.engine import split_engine_args
from chutes.chute.template.openai import (
    ENGINE_PORT,
    OpenAIChute,
    build_openai_chute,
    engine_flags,
    refuse_revision_in_args,
)
from chutes.image.standard.sglang import SGLANG
from chutes.node_selector import NodeSelector

__all__ = ["build_sglang_chute", "sglang_command", "OpenAIChute"]
SGLANG_ROUTES = ("chat", "completions", "models")


def sglang_command(model_name: str, port: int, revision: str | None = None, engine_args: Any = None) -> list[str]:
    """Returns the command line that serves `model_name` with SGLang on 127.0.0.1:`port`."""
    args = split_engine_args(engine_args)
    refuse_revision_in_args(args, "build_sglang_chute")
    return [
        "python", "-m", "sglang.launch_server",
        "--model-path", model_name, "--served-model-name", model_name,
        "--host", "127.0.0.1", "--port", str(port),
        *engine_flags(revision, args),
    ]  # fmt: skip


def build_sglang_chute(
    username: str,
    model_name: str,
    node_selector: NodeSelector | dict,
    image: Any = SGLANG,
    tagline: str = "",
    readme: str = "",
    concurrency: int = 32,
    engine_args: Any = None,
    revision: str | None = None,
    max_instances: int = 1,
    scaling_threshold: float = 0.75,
    shutdown_after_seconds: int = 300,
    allow_external_egress: bool = False,
    tee: bool = False,
    engine_port: int = ENGINE_PORT,
) -> OpenAIChute:
    """Returns a chute named after `model_name` serving it through SGLang: chat, completions and models."""
    return build_openai_chute(
        username=username, name=model_name, image=image, node_selector=node_selector,
        command=sglang_command(model_name, engine_port, revision, engine_args), routes=SGLANG_ROUTES,
        engine_port=engine_port, standard_template="sglang", tagline=tagline, readme=readme,
        concurrency=concurrency, revision=revision, max_instances=max_instances,
        scaling_threshold=scaling_threshold, shutdown_after_seconds=shutdown_after_seconds,
        allow_external_egress=allow_external_egress, tee=tee,
    )  # fmt: skip
