"""A chute built into its own image: a JSON cord and a streaming cord (`chutes build` example)."""

from __future__ import annotations

import asyncio
import os

from words import split_words

from chutes.chute import Chute, NodeSelector
from chutes.image import Image

image = (
    Image("myuser", "stream-chute", "0.1")
    .with_env("GREETING", 'Hello, "$USER" and friends')
    .with_label("org.example.team", "examples")
)

chute = Chute(
    username="myuser",
    name="stream-chute",
    image=image,
    tagline="Echoes and streams words",
    node_selector=NodeSelector(gpu_count=0),
)


@chute.cord(public_api_path="/echo")
async def echo(self, text: str) -> dict:
    """Returns the text with the greeting baked into the image."""
    return {"echo": text, "greeting": os.environ.get("GREETING"), "version": 1}


@chute.cord(public_api_path="/words", stream=True)
async def words(self, text: str, delay: float = 0.0):
    """Streams the text back one word per server-sent event."""
    for index, word in enumerate(split_words(text)):
        yield {"index": index, "word": word}
        await asyncio.sleep(delay)
