"""The chute under test: one direct-parameter, one pydantic-input and one streaming cord."""

from __future__ import annotations

from payloads import STREAM_EVENTS, Person, describe, event, greet

from chutes.chute import Chute

# High concurrency so the limiter never answers 429 under load.
chute = Chute(username="bench", name="runtime", image="bench:latest", concurrency=1024)


@chute.cord(public_api_path="/hello")
async def hello(self, name: str) -> dict:
    return greet(name)


@chute.cord(public_api_path="/person", input_schema=Person)
async def person(self, data: Person) -> dict:
    return describe(data.name, data.age)


@chute.cord(public_api_path="/stream", stream=True)
async def stream(self, prompt: str):
    for index in range(STREAM_EVENTS):
        yield event(prompt, index)
