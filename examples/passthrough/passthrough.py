"""A passthrough chute: an inference server runs beside the chute, and cords forward to it.

Here the "inference server" is a tiny OpenAI-style app started in an on_startup hook on
127.0.0.1:8001; in a real image it would be vLLM or similar, started the same way.
"""

from __future__ import annotations

import asyncio
import os

import uvicorn
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chutes.chute import Chute, NodeSelector

UPSTREAM_PORT = int(os.environ.get("UPSTREAM_PORT", "8001"))
chute = Chute(
    username="myuser",
    name="passthrough",
    image="myuser/passthrough:0.1",
    concurrency=64,
    node_selector=NodeSelector(gpu_count=0),
)


class ChatRequest(BaseModel):
    model: str
    messages: list[dict]


async def completions(request: Request) -> JSONResponse:
    body = await request.json()
    reply = body["messages"][-1]["content"][::-1]
    return JSONResponse({"choices": [{"message": {"role": "assistant", "content": reply}}]})


@chute.on_startup()
async def start_upstream(self) -> None:
    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    self.upstream = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=UPSTREAM_PORT, log_level="warning"))
    self.upstream_task = asyncio.create_task(self.upstream.serve())
    while not self.upstream.started:
        await asyncio.sleep(0.01)


@chute.on_shutdown()
async def stop_upstream(self) -> None:
    self.upstream.should_exit = True
    await self.upstream_task


@chute.cord(
    public_api_path="/v1/chat/completions",
    passthrough=True,
    passthrough_path="/v1/chat/completions",
    passthrough_port=UPSTREAM_PORT,
    input_schema=ChatRequest,
)
async def chat_completions(self, data: ChatRequest):
    return data
