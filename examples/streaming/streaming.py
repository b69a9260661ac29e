"""A streaming chute: a toy token generator made at startup, streamed as server-sent events."""

from __future__ import annotations

import asyncio

from chutes.chute import Chute, NodeSelector

chute = Chute(
    username="myuser",
    name="streaming",
    image="myuser/streaming:0.1",
    concurrency=32,
    node_selector=NodeSelector(gpu_count=0),
)


class EchoModel:
    """Stands in for a language model: 'generates' the prompt back, one word at a time."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def generate_stream(self, prompt: str, max_tokens: int):
        for word in prompt.split()[:max_tokens]:
            await asyncio.sleep(self.delay)
            yield word


@chute.on_startup()
async def load_model(self) -> None:
    self.model = EchoModel(delay=0.05)


@chute.cord(public_api_path="/generate", stream=True)
async def generate(self, prompt: str, max_tokens: int = 64):
    """Streams each token as an SSE event, then a final event with finish_reason."""
    async for token in self.model.generate_stream(prompt, max_tokens):
        yield {"choices": [{"delta": {"content": token}, "index": 0, "finish_reason": None}]}
    yield {"choices": [{"delta": {}, "index": 0, "finish_reason": "stop"}]}


@chute.cord(public_api_path="/generate.ndjson", stream=True, output_content_type="application/x-ndjson")
async def generate_lines(self, prompt: str, max_tokens: int = 64):
    """The same tokens as JSON lines."""
    async for token in self.model.generate_stream(prompt, max_tokens):
        yield {"token": token}
