"""The smallest chute: one JSON cord with direct parameters and one with a validated model."""

from __future__ import annotations

from pydantic import BaseModel, Field

from chutes.chute import Chute, NodeSelector

# gpu_count=0: a CPU chute, so it deploys to any host (GPU chutes say e.g. NodeSelector(gpu_count=1))
chute = Chute(
    username="myuser",
    name="hello",
    image="myuser/hello:0.1",
    concurrency=64,
    node_selector=NodeSelector(gpu_count=0),
)


class GreetingInput(BaseModel):
    name: str = Field(..., min_length=1, max_length=100)
    language: str = Field("en", pattern="^(en|es|fr|de)$")


GREETINGS = {"en": "Hello, {}!", "es": "¡Hola, {}!", "fr": "Bonjour, {}!", "de": "Hallo, {}!"}


@chute.cord(public_api_path="/hello")
async def say_hello(self, name: str) -> dict:
    """Greets someone by name."""
    return {"message": f"Hello, {name}!"}


@chute.cord(public_api_path="/greet", input_schema=GreetingInput)
async def greet(self, data: GreetingInput) -> dict:
    """Greets someone in one of four languages."""
    return {"greeting": GREETINGS[data.language].format(data.name)}


@chute.cord(public_api_path="/status", method="GET")
async def status(self) -> dict:
    return {"status": "healthy", "cords": [cord.path for cord in self.cords]}
