"""A chute importing the SDK's own dependencies at module level, as 8 of the SDK's examples do."""

import pybase64
from loguru import logger

from chutes.chute import Chute, NodeSelector
from chutes.image import Image

image = Image(username="myuser", name="sdk-imports", tag="0.1").from_base("python:3.11-slim")
chute = Chute(username="myuser", name="sdk-imports", image=image, node_selector=NodeSelector(gpu_count=0))


@chute.cord(public_api_path="/encode")
async def encode(self, text: str) -> dict:
    logger.info(f"encoding {len(text)} characters")
    return {"b64": pybase64.b64encode(text.encode()).decode()}
