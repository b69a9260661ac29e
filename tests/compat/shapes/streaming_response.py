"""stream=True on a function that returns a StreamingResponse, as the platform's streaming guide teaches."""

import json

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from chutes.chute import Chute, NodeSelector
from chutes.image import Image


class Prompt(BaseModel):
    prompt: str


image = Image(username="myuser", name="streaming-response", tag="0.1").from_base("python:3.11-slim")
chute = Chute(username="myuser", name="streaming-response", image=image, node_selector=NodeSelector(gpu_count=0))


@chute.cord(public_api_path="/stream", stream=True, output_content_type="text/event-stream")
async def stream(self, args: Prompt) -> StreamingResponse:
    async def events():
        for word in args.prompt.split():
            yield f"data: {json.dumps({'token': word})}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
