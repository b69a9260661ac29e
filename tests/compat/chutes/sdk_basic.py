"""A chute written as the Chutes platform's docs show: its imports, names and keywords."""

from typing import Any

from pydantic import BaseModel, Field

from chutes.chute import Chute, ChutePack, NodeSelector  # noqa: F401
from chutes.chute.node_selector import NodeSelector as SelectorAgain  # noqa: F401
from chutes.exception import DuplicatePath, InvalidPath  # noqa: F401
from chutes.image import Image

image = (
    Image(username="MyUser", name="kokoro", tag="0.1", readme="## Kokoro text to speech")
    .from_base("parachutes/python:3.12")
    .from_base("python:3.12-slim")
    .with_maintainer("me@example.com")
    .apt_install(["git"])
    .apt_remove(["git"])
    .with_env("HF_HOME", "/cache")
    .add(source="voices", dest="/app/voices", chown="1000:1000", chmod="644")
)


class Sentence(BaseModel):
    text: str = Field(min_length=1)
    speed: float = Field(1.0, gt=0, le=4)


chute = Chute(
    username="MyUser",
    name="Kokoro-82M",
    image=image,
    tagline="Speech",
    readme="reads text aloud",
    node_selector=NodeSelector(gpu_count=0, min_vram_gb_per_gpu=16, max_hourly_price_per_gpu=1.5, gpu_typo=1),
    concurrency=2,
    revision="0123456789abcdef",
    standard_template=None,
    tee=True,
    encrypted_fs=True,
    lock_modules=False,
)


@chute.on_startup()
async def initialize(self) -> None:
    self.voices = {"af": "American female"}


@chute.cord(public_api_path="/speak", output_schema={"type": "object"}, pass_chute=True, provision_timeout=30)
async def speak(self, args: Sentence) -> dict:
    return {"said": args.text, "speed": args.speed}


@chute.cord(public_api_path="/configure")
async def configure(self, data: dict) -> dict:
    return {"got": data}


@chute.cord(public_api_path="/many")
async def many(self, items: list[int]) -> dict:
    return {"sum": sum(items)}


@chute.cord(public_api_path="/anything")
async def anything(self, payload: Any) -> dict:
    return {"type": type(payload).__name__}


@chute.cord(
    public_api_path="/schema",
    input_schema={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
)
async def schema(self, data) -> dict:
    return {"q": data.get("q"), "keys": sorted(data)}


@chute.cord(public_api_path="/voices", method="GET")
async def voices(self) -> dict:
    return self.voices
