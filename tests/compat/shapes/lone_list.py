"""A lone list parameter, called with a JSON array (the SDK's spelling) or {"texts": [...]} (cords.md's)."""

from chutes.chute import Chute, NodeSelector
from chutes.image import Image

image = Image(username="myuser", name="lone-list", tag="0.1").from_base("python:3.11-slim")
chute = Chute(username="myuser", name="lone-list", image=image, node_selector=NodeSelector(gpu_count=0))


@chute.cord(public_api_path="/optimized")
async def optimized_endpoint(self, texts: list[str]) -> dict:
    return {"results": [t.upper() for t in texts]}
