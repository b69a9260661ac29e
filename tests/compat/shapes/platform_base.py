"""A chute on the platform's base image, whose tag names its Python (3.12)."""

from chutes.chute import Chute, NodeSelector
from chutes.image import Image

image = (
    Image(username="myuser", name="platform-base", tag="0.1")
    .from_base("parachutes/python:3.12")
    .pip_install(["six==1.16.0"])
)
chute = Chute(username="myuser", name="platform-base", image=image, node_selector=NodeSelector(gpu_count=0))


@chute.cord(public_api_path="/hello")
async def hello(self, name: str = "world") -> dict:
    return {"hello": name}
