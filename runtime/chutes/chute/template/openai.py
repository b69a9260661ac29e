"""A chute whose cords pass through an OpenAI-compatible engine started beside it; the LLM templates' base."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from chutes.chute.base import Chute, ChutePack
from chutes.chute.template.engine import EngineProcess
from chutes.chute.template.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
    TokenizeRequest,
)
from chutes.node_selector import NodeSelector

ENGINE_PORT = 10101  # the port the SDK's templates give their engine
LLM_ROUTES = ("chat", "completions", "models", "tokenize")
EMBEDDING_ROUTES = ("embeddings", "models")


class OpenAIChute(ChutePack):
    """A template's chute with a handle on each of its cords (None where the template has no such route)."""

    chat: Callable | None = None
    chat_stream: Callable | None = None
    completion: Callable | None = None
    completion_stream: Callable | None = None
    embed: Callable | None = None
    models: Callable | None = None
    tokenize: Callable | None = None
    detokenize: Callable | None = None


def build_openai_chute(
    *,
    username: str,
    name: str,
    image: Any,
    node_selector: NodeSelector | dict | None,
    command: Sequence[str],
    routes: Sequence[str] = LLM_ROUTES,
    engine_port: int = ENGINE_PORT,
    standard_template: str,
    **chute_options: Any,
) -> OpenAIChute:
    """Takes a chute's settings and the engine's command line (serving on `engine_port`), and returns the pack.

    The chute starts the engine in `on_startup` and answers only once `GET /v1/models` does; each
    cord checks its body against the OpenAI request schema, then streams it to the engine and back.
    """
    chute = Chute(
        username=username,
        name=name,
        image=image,
        node_selector=node_selector,
        standard_template=standard_template,
        **chute_options,
    )
    engine = EngineProcess(command, port=engine_port)
    handles: dict[str, Callable] = {}

    @chute.on_startup()
    async def start_engine(self) -> None:
        await engine.start()

    @chute.on_shutdown()
    async def stop_engine(self) -> None:
        await engine.stop()

    def passthrough(public_path: str, key: str, **options: Any) -> None:
        async def forward(self, data) -> Any:  # never called: the body goes to the engine as it is
            return data

        forward.__name__ = forward.__qualname__ = key
        options.setdefault("method", "POST")
        chute.cord(
            public_api_path=public_path,
            passthrough=True,
            passthrough_path=public_path,
            passthrough_port=engine_port,
            **options,
        )(forward)
        handles[key] = forward

    if "chat" in routes:
        passthrough("/v1/chat/completions", "chat", input_schema=ChatCompletionRequest)
        passthrough("/v1/chat/completions", "chat_stream", input_schema=ChatCompletionRequest, stream=True)
    if "completions" in routes:
        passthrough("/v1/completions", "completion", input_schema=CompletionRequest)
        passthrough("/v1/completions", "completion_stream", input_schema=CompletionRequest, stream=True)
    if "embeddings" in routes:
        passthrough("/v1/embeddings", "embed", input_schema=EmbeddingRequest)
    if "tokenize" in routes:
        passthrough("/tokenize", "tokenize", input_schema=TokenizeRequest, path="/do_tokenize")
        passthrough("/detokenize", "detokenize", input_schema=DetokenizeRequest, path="/do_detokenize")
    if "models" in routes:
        passthrough("/v1/models", "models", method="GET")
    return OpenAIChute(chute=chute, **handles)


def engine_flags(revision: str | None, engine_args: list[str], flag: str = "--revision") -> list[str]:
    """Returns `engine_args` with `flag revision` first when a revision is given."""
    return ([flag, revision] if revision else []) + engine_args


def refuse_revision_in_args(engine_args: list[str], builder: str) -> None:
    if any(a == "--revision" or a.startswith("--revision=") for a in engine_args):
        raise ValueError(f"pass the model's revision as {builder}(revision=...), not in engine_args")
