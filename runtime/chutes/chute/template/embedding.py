"""`build_embedding_chute`: an embedding model served by vLLM's `/v1/embeddings`, with the SDK's arguments."""

from __future__ import annotations

from typing import Any

from chutes.chute.template.engine import split_engine_args
from chutes.chute.template.openai import (
    EMBEDDING_ROUTES,
    ENGINE_PORT,
    OpenAIChute,
    build_openai_chute,
    engine_flags,
    refuse_revision_in_args,
)
from chutes.image.standard.vllm import VLLM
from chutes.node_selector import NodeSelector

__all__ = ["build_embedding_chute", "embedding_command", "OpenAIChute"]
POOLING_TYPES = frozenset({"auto", "MEAN", "CLS", "LAST", "ALL", "STEP"})


def embedding_command(
    model_name: str,
    port: int,
    revision: str | None = None,
    engine_args: Any = None,
    *,
    pooling_type: str = "auto",
    max_embed_len: int | None = None,
    enable_chunked_processing: bool = True,
) -> list[str]:
    """Returns the command line that serves `model_name` as an embedding model with vLLM on 127.0.0.1:`port`."""
    if pooling_type not in POOLING_TYPES:
        raise ValueError(f"pooling_type {pooling_type!r} is not one of {', '.join(sorted(POOLING_TYPES))}")
    args = split_engine_args(engine_args)
    refuse_revision_in_args(args, "build_embedding_chute")
    pooler: dict[str, Any] = {} if pooling_type == "auto" else {"pooling_type": pooling_type}
    if enable_chunked_processing:
        pooler["enable_chunked_processing"] = True
        if max_embed_len:
            pooler["max_embed_len"] = max_embed_len
    extra = ["--override-pooler-config", json_arg(pooler)] if pooler else []
    return [
        "python", "-m", "vllm.entrypoints.openai.api_server",
        "--model", model_name, "--served-model-name", model_name, "--task", "embed",
        "--host", "127.0.0.1", "--port", str(port),
        *extra, *engine_flags(revision, args),
    ]  # fmt: skip


def json_arg(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def build_embedding_chute(
    username: str,
    model_name: str,
    node_selector: NodeSelector | dict,
    image: Any = VLLM,
    tagline: str = "",
    readme: str = "",
    concurrency: int = 32,
    engine_args: Any = None,
    revision: str | None = None,
    max_instances: int = 1,
    scaling_threshold: float = 0.75,
    shutdown_after_seconds: int = 300,
    pooling_type: str = "auto",
    max_embed_len: int = 3072000,
    enable_chunked_processing: bool = True,
    allow_external_egress: bool = False,
    tee: bool = False,
    engine_port: int = ENGINE_PORT,
) -> OpenAIChute:
    """Returns a chute named after `model_name` serving `/v1/embeddings` and `/v1/models` through vLLM."""
    command = embedding_command(
        model_name, engine_port, revision, engine_args,
        pooling_type=pooling_type, max_embed_len=max_embed_len, enable_chunked_processing=enable_chunked_processing,
    )  # fmt: skip
    return build_openai_chute(
        username=username, name=model_name, image=image, node_selector=node_selector, command=command,
        routes=EMBEDDING_ROUTES, engine_port=engine_port, standard_template="embedding", tagline=tagline,
        readme=readme, concurrency=concurrency, revision=revision, max_instances=max_instances,
        scaling_threshold=scaling_threshold, shutdown_after_seconds=shutdown_after_seconds,
        allow_external_egress=allow_external_egress, tee=tee,
    )  # fmt: skip
