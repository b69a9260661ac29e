"""Cords with FastAPI parameters behave as in FastAPI, with the chute as self."""

from __future__ import annotations

import json

from chutes.testing import client
from tests.fixtures.chutes.fastapi_params import chute


async def test_depends_header_and_query() -> None:
    async with client(chute) as c:
        r = await c.post("/whoami?verbose=true", json={"text": "hi"}, headers={"x-user": "ada"})
        assert r.json() == {"user": "ada", "text": "hi", "verbose": True, "chute": "fastapi-params"}
        r = await c.post("/whoami", json={"text": "hi"})
        assert (r.status_code, r.json()) == (401, {"detail": "send X-User"})
        r = await c.post("/whoami", json={}, headers={"x-user": "ada"})
        assert r.status_code == 422
        assert [e["loc"] for e in r.json()["detail"]] == [["body", "text"]]


async def test_an_exception_in_a_dependency_is_a_json_500() -> None:
    async with client(chute) as c:
        r = await c.post("/whoami", json={"text": "hi"}, headers={"x-user": "crash"})
        assert (r.status_code, r.json()) == (500, {"detail": "Internal Server Error"})
        r = await c.post("/whoami", json={"text": "hi"}, headers={"x-user": "ada"})
        assert r.status_code == 200


async def test_streaming_with_a_dependency() -> None:
    async with client(chute) as c:
        r = await c.post("/tokens", json={"prompt": "a b"}, headers={"x-user": "ada"})
        assert r.headers["content-type"] == "text/event-stream"
        events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
        assert events == [{"user": "ada", "token": "a"}, {"user": "ada", "token": "b"}]
        assert (await c.post("/tokens", json={"prompt": "a"})).status_code == 401


async def test_form_fields_and_files_in_a_sync_cord() -> None:
    async with client(chute) as c:
        r = await c.post("/form", data={"title": "t", "tags": "x,y"}, files={"file": ("f.txt", b"12345")})
        assert r.json() == {"title": "t", "tags": "x,y", "size": 5}
        r = await c.post("/form", data={"title": "t"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "file"]


async def test_background_tasks_run_after_the_response() -> None:
    async with client(chute) as c:
        assert (await c.post("/later", json={"n": 7})).json() == {"queued": 7}
    assert chute.done == 7


async def test_an_upload_annotation_alone_makes_the_other_parameters_form_fields() -> None:
    async with client(chute) as c:
        r = await c.post("/many", data={"title": "t"}, files=[("files", ("a.txt", b"1")), ("files", ("b.txt", b"2"))])
        assert r.json() == {"title": "t", "names": ["a.txt", "b.txt"]}
