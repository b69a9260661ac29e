"""The same three endpoints written as a user would in plain FastAPI."""

from __future__ import annotations

import json

from fastapi import Body, FastAPI
from fastapi.responses import StreamingResponse
from payloads import STREAM_EVENTS, Person, describe, event, greet

app = FastAPI()


@app.post("/hello")
async def hello(name: str = Body(embed=True)) -> dict:
    return greet(name)


@app.post("/person")
async def person(data: Person) -> dict:
    return describe(data.name, data.age)


async def frames(prompt: str):
    for index in range(STREAM_EVENTS):
        yield f"data: {json.dumps(event(prompt, index))}\n\n"


@app.post("/stream")
async def stream(prompt: str = Body(embed=True)) -> StreamingResponse:
    return StreamingResponse(frames(prompt), media_type="text/event-stream")
