"""The built-in routes: /_ping, /_ready, /_metrics, /openapi.json and /docs."""

from __future__ import annotations

import re

import httpx
from pydantic import BaseModel

from chutes.chute import Chute
from chutes.testing import client
from tests.conftest import assert_page_works_offline


class Full(BaseModel):
    text: str
    temperature: float = 0.7


class Simple(BaseModel):
    text: str


def documented_chute() -> Chute:
    chute = Chute(username="tests", name="docs", image="x", tagline="A chute to document", concurrency=4)

    @chute.cord(public_api_path="/generate", input_schema=Full, minimal_input_schema=Simple)
    async def generate(self, data: Full) -> dict:
        """Generates text."""
        return {"text": data.text}

    @chute.cord(public_api_path="/stream", stream=True)
    async def stream(self, prompt: str, n: int = 3):
        yield {"token": prompt}

    @chute.cord(public_api_path="/image", output_content_type="image/png")
    async def image(self, prompt: str) -> bytes:
        return b"png"

    @chute.cord(public_api_path="/search", method="GET")
    async def search(self, q: str, limit: int = 5) -> list:
        return []

    @chute.cord(public_api_path="/raw")
    async def raw(self, audio: bytes) -> dict:
        return {}

    return chute


async def test_ping_and_ready() -> None:
    async with client(documented_chute()) as c:
        assert (await c.get("/_ping")).json() == {"status": "ok"}
        assert (await c.get("/_ready")).json() == {"ready": True, "phase": "ready"}


async def test_metrics_count_requests_by_cord_and_status() -> None:
    async with client(documented_chute()) as c:
        await c.post("/generate", json={"text": "a"})
        await c.post("/generate", json={"text": "b"})
        await c.post("/generate", json={})
        text = (await c.get("/_metrics")).text
    assert 'chutes_requests_total{cord="generate",method="POST",status="200"} 2' in text
    assert 'chutes_requests_total{cord="generate",method="POST",status="422"} 1' in text
    assert 'chutes_request_duration_seconds_count{cord="generate"} 3' in text
    assert 'chutes_request_duration_seconds_bucket{cord="generate",le="+Inf"} 3' in text
    assert "chutes_requests_in_flight 0" in text
    assert "chutes_ready 1" in text
    assert all(re.fullmatch(r"(# .*|[a-z_]+(\{.*\})? [0-9.e+-]+)", line) for line in text.splitlines())


async def test_openapi_documents_every_cord() -> None:
    async with client(documented_chute()) as c:
        document = (await c.get("/openapi.json")).json()
        docs = await c.get("/docs")
    assert document["info"]["title"] == "tests/docs"
    paths = document["paths"]
    generate = paths["/generate"]["post"]
    assert generate["description"] == "Generates text."
    assert generate["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Full"}
    assert generate["x-chutes-minimal-input-schema"] == {"$ref": "#/components/schemas/Simple"}
    assert document["components"]["schemas"]["Simple"]["required"] == ["text"]
    stream = paths["/stream"]["post"]
    assert stream["x-chutes-stream"] is True
    assert list(stream["responses"]["200"]["content"]) == ["text/event-stream"]
    body = document["components"]["schemas"]["StreamInput"]
    assert body["required"] == ["prompt"] and set(body["properties"]) == {"prompt", "n"}
    assert list(paths["/image"]["post"]["responses"]["200"]["content"]) == ["image/png"]
    assert {p["name"] for p in paths["/search"]["get"]["parameters"]} == {"q", "limit"}
    assert list(paths["/raw"]["post"]["requestBody"]["content"]) == ["application/octet-stream"]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_docs_page_loads_swagger_ui_from_the_chute_itself(live_server) -> None:
    url = live_server(documented_chute())
    page = httpx.get(f"{url}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    refs = assert_page_works_offline(page.text, lambda ref: httpx.get(url + ref))
    assert set(refs) == {"/_docs/swagger-ui.css", "/_docs/favicon-32x32.png", "/_docs/swagger-ui-bundle.js"}
    assert "SwaggerUIBundle" in httpx.get(f"{url}/_docs/swagger-ui-bundle.js").text
    assert httpx.get(f"{url}/_docs/swagger-ui.js.map").status_code == 404
