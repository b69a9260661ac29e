"""The OpenAI-compatible request bodies the LLM templates check before forwarding them to the engine.

Only what a wrong request gets wrong is checked; every other field passes through to the engine
untouched (`extra="allow"`), so new engine options need no change here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class OpenModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(OpenModel):
    role: str = Field(min_length=1)
    content: str | list[Any] | None = None


class Sampling(OpenModel):
    model: str | None = None
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1, le=16)


class ChatCompletionRequest(Sampling):
    """`POST /v1/chat/completions`."""

    messages: list[ChatMessage] = Field(min_length=1)


class CompletionRequest(Sampling):
    """`POST /v1/completions`."""

    prompt: str | list[str] | list[int] | list[list[int]]


class EmbeddingRequest(OpenModel):
    """`POST /v1/embeddings`."""

    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]]


class TokenizeRequest(OpenModel):
    """`POST /tokenize`."""

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None


class DetokenizeRequest(OpenModel):
    """`POST /detokenize`."""

    model: str | None = None
    tokens: list[int]
