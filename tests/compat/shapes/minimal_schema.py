"""minimal_input_schema without input_schema: the full input comes from the function's type hints."""

from pydantic import BaseModel, Field

from chutes.chute import Chute, NodeSelector
from chutes.image import Image


class GenerationInput(BaseModel):
    prompt: str
    steps: int = Field(4, ge=1, le=50)
    seed: int | None = None


class MinimalInput(BaseModel):
    prompt: str


image = Image(username="myuser", name="minimal-schema", tag="0.1").from_base("python:3.11-slim")

chute = Chute(
    username="myuser",
    name="minimal-schema",
    image=image,
    node_selector=NodeSelector(gpu_count=0),
)


@chute.cord(public_api_path="/generate", minimal_input_schema=MinimalInput)
async def generate(self, args: GenerationInput) -> dict:
    return {"prompt": args.prompt, "steps": args.steps}


@chute.cord(public_api_path="/echo", minimal_input_schema=MinimalInput)
async def echo(self, prompt: str, times: int = 1) -> dict:
    return {"echo": [prompt] * times}
