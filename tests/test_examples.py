"""Every example chute serves what its docstrings promise."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import httpx

from chutes.testing import client
from tests.conftest import free_port

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    path = EXAMPLES / name / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"examples_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.chute


async def test_hello() -> None:
    async with client(load("hello")) as c:
        assert (await c.post("/hello", json={"name": "Ada"})).json() == {"message": "Hello, Ada!"}
        assert (await c.post("/greet", json={"name": "Ada", "language": "fr"})).json() == {"greeting": "Bonjour, Ada!"}
        r = await c.post("/greet", json={"name": "Ada", "language": "xx"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "language"]
        assert (await c.get("/status")).json() == {"status": "healthy", "cords": ["/hello", "/greet", "/status"]}


async def test_streaming(live_server) -> None:
    url = live_server(load("streaming"))
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/generate", json={"prompt": "one two three"})
        events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
        assert [e["choices"][0]["delta"].get("content") for e in events] == ["one", "two", "three", None]
        assert events[-1]["choices"][0]["finish_reason"] == "stop"
        r = await c.post("/generate.ndjson", json={"prompt": "a b", "max_tokens": 1})
        assert r.text == '{"token":"a"}\n'


async def test_passthrough(live_server, monkeypatch) -> None:
    monkeypatch.setenv("UPSTREAM_PORT", str(free_port()))
    url = live_server(load("passthrough"))
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "abc"}]})
        assert r.json() == {"choices": [{"message": {"role": "assistant", "content": "cba"}}]}
        r = await c.post("/v1/chat/completions", json={"messages": []})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "model"]


async def test_upload() -> None:
    async with client(load("upload")) as c:
        r = await c.post(
            "/upload", files={"file": ("a.bin", b"\x00" * 10, "application/octet-stream")}, data={"note": "n"}
        )
        assert r.json() == {
            "filename": "a.bin",
            "content_type": "application/octet-stream",
            "size": 10,
            "sha256": hashlib.sha256(b"\x00" * 10).hexdigest(),
            "note": "n",
        }
        r = await c.post("/upload", data={"note": "no file"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "file"]
        r = await c.post("/checksum", content=b"abc", headers={"content-type": "image/png"})
        assert r.json() == {"size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}
