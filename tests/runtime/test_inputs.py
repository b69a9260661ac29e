"""How cords take input, and what bad input gets back (through the testing client)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import pytest
from pydantic import BaseModel, ConfigDict, Field

from chutes.chute import Chute
from chutes.testing import client
from tests.fixtures.chutes.inputs import chute


def fields(response) -> list[tuple[list, str]]:
    return [(e["loc"], e["type"]) for e in response.json()["detail"]]


async def test_direct_parameters_come_from_the_json_body_with_defaults() -> None:
    async with client(chute) as c:
        r = await c.post("/direct", json={"text": "hi"})
        assert r.json() == {"text": "hi", "temperature": 0.7, "tags": [], "options": None}
        r = await c.post(
            "/direct", json={"text": "hi", "temperature": "1.5", "tags": ["a"], "options": {"stop": ["x"]}}
        )
        assert r.json() == {
            "text": "hi",
            "temperature": 1.5,
            "tags": ["a"],
            "options": {"temperature": 0.7, "stop": ["x"]},
        }


async def test_a_model_parameter_takes_its_fields_from_the_top_level() -> None:
    async with client(chute) as c:
        assert (await c.post("/model", json={"text": "x"})).json() == {"text": "x", "max_tokens": 16}
        assert (await c.post("/schema", json={"text": "y"})).json() == {"type": "Prompt", "text": "y"}


async def test_a_bytes_parameter_receives_the_raw_body() -> None:
    async with client(chute) as c:
        r = await c.post("/raw", content=b"\x00\x01binary", headers={"content-type": "application/octet-stream"})
        assert r.json() == {"size": 8, "head": "\x00\x01bi"}


async def test_get_and_delete_read_the_query_string() -> None:
    async with client(chute) as c:
        r = await c.get("/search", params=[("q", "cats"), ("limit", "3"), ("tags", "a"), ("tags", "b")])
        assert r.json() == {"q": "cats", "limit": 3, "tags": ["a", "b"]}
        r = await c.delete("/items?ids=1&ids=2")
        assert r.json() == {"deleted": [1, 2]}
        r = await c.get("/search", params={"limit": "many"})
        assert r.status_code == 422
        assert fields(r) == [(["query", "q"], "missing"), (["query", "limit"], "int_parsing")]


async def test_method_synonym_and_default_path() -> None:
    async with client(chute) as c:
        r = await c.put("/put_config", json={"a": 1})  # a lone `dict` parameter is the whole body
        assert r.json() == {"config": {"a": 1}}
        r = await c.put("/put_config", json={"config": {"a": 1}})  # or the value of its only key, by name
        assert r.json() == {"config": {"a": 1}}
        r = await c.put("/put_config", json={"config": 5})  # not a dict by name, but a dict whole
        assert r.json() == {"config": {"config": 5}}
        assert (await c.post("/nothing")).json() == {"ok": True}


async def test_request_parameter_sees_headers_and_the_body() -> None:
    async with client(chute) as c:
        r = await c.post("/request", json={"text": "t"}, headers={"user-agent": "tester/1"})
        assert r.json() == {"text": "t", "agent": "tester/1", "body": {"text": "t"}}


async def test_state_set_on_self_persists_across_requests() -> None:
    async with client(chute) as c:
        counts = [(await c.post("/counter")).json()["count"] for _ in range(3)]
        assert counts == [counts[0], counts[0] + 1, counts[0] + 2]


async def test_sync_cords_run_off_the_event_loop() -> None:
    async with client(chute) as c:
        start = time.monotonic()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while time.monotonic() - start < 0.25:
                ticks += 1
                await asyncio.sleep(0.01)

        r, _ = await asyncio.gather(c.post("/sync", json={"seconds": 0.3}), tick())
        assert r.json() == {"slept": 0.3}
        assert ticks > 5  # the loop kept running while the cord slept


@pytest.mark.parametrize(
    ("body", "headers", "status", "expected"),
    [
        (b'{"text": ', {"content-type": "application/json"}, 422, [(["body"], "json_invalid")]),
        (b"[1, 2]", {"content-type": "application/json"}, 422, [(["body"], "model_type")]),
        (b'"just a string"', {"content-type": "application/json"}, 422, [(["body"], "model_type")]),
        (b'{"text": 5}', {"content-type": "application/json"}, 422, [(["body", "text"], "string_type")]),
        (b"{}", {"content-type": "application/json"}, 422, [(["body", "text"], "missing")]),
        (b"", {}, 422, [(["body", "text"], "missing")]),
        (
            b'{"text": "a", "temprature": 1}',
            {"content-type": "application/json"},
            422,
            [(["body", "temprature"], "extra_forbidden")],
        ),
        (
            b'{"text": "a", "temperature": "hot"}',
            {"content-type": "application/json"},
            422,
            [(["body", "temperature"], "float_parsing")],
        ),
    ],
    ids=["malformed", "array", "string", "wrong-type", "missing", "empty-body", "unknown-key", "bad-float"],
)
async def test_bad_json_input_gets_422_naming_the_field(body, headers, status, expected) -> None:
    async with client(chute) as c:
        r = await c.post("/direct", content=body, headers=headers)
        assert r.status_code == status
        assert fields(r) == expected
        assert all(e["msg"] for e in r.json()["detail"])


async def test_malformed_json_message_says_what_to_send() -> None:
    async with client(chute) as c:
        r = await c.post("/direct", content=b"{oops", headers={"content-type": "application/json"})
        assert "send a JSON object" in r.json()["detail"][0]["msg"]


async def test_model_constraints_are_enforced() -> None:
    async with client(chute) as c:
        r = await c.post("/model", json={"text": "", "max_tokens": 0})
        assert r.status_code == 422
        assert fields(r) == [(["body", "text"], "string_too_short"), (["body", "max_tokens"], "greater_than_equal")]


async def test_wrong_content_type_gets_415_with_the_fix() -> None:
    async with client(chute) as c:
        r = await c.post("/direct", content=b"text=hi", headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 415
        assert "Content-Type: application/json" in r.json()["detail"]
        r = await c.post("/direct", content=b'{"text": "hi"}', headers={"content-type": "application/vnd.api+json"})
        assert r.status_code == 200


async def test_unknown_path_is_404_and_wrong_method_is_405_with_allow() -> None:
    async with client(chute) as c:
        r = await c.post("/nope", json={})
        assert r.status_code == 404
        assert "/nope" in r.json()["detail"]
        r = await c.get("/direct")
        assert r.status_code == 405
        assert r.headers["allow"] == "POST"
        r = await c.post("/search")
        assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD")
        r = await c.head("/search?q=x")
        assert (r.status_code, r.headers["content-type"]) == (200, "application/json")
        r = await c.post("/_ping")
        assert r.status_code == 405


class Point(BaseModel):
    x: float
    meta: dict = {}


class Loose(BaseModel):
    model_config = ConfigDict(allow_inf_nan=True)
    x: float


def nan_chute() -> Chute:
    nan = Chute(username="tests", name="nan", image="tests/nan")

    @nan.cord(public_api_path="/scale")
    async def scale(self, factor: float, extra: dict | None = None) -> dict:
        return {"factor": factor}

    @nan.cord(public_api_path="/point")
    async def point(self, p: Point) -> dict:
        return {"x": p.x}

    @nan.cord(public_api_path="/loose")
    async def loose(self, p: Loose) -> dict:
        return {"x": p.x}

    @nan.cord(public_api_path="/opted")
    async def opted(self, value: Annotated[float, Field(allow_inf_nan=True)]) -> dict:
        return {"finite": value == value and abs(value) != float("inf")}

    return nan


async def test_nan_and_infinity_are_refused_unless_a_cord_opts_in() -> None:
    async with client(nan_chute()) as c:
        for body in (b'{"factor": NaN}', b'{"factor": Infinity}', b'{"factor": -Infinity}', b'{"factor": "nan"}'):
            r = await c.post("/scale", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 422, body
            assert fields(r) == [(["body", "factor"], "finite_number")]
            assert b"NaN" not in r.content  # the answer is valid JSON
        r = await c.post("/scale", content=b'{"factor": 1, "extra": {"a": [1, NaN]}}')
        assert fields(r) == [(["body", "extra", "a", 1], "finite_number")]
        r = await c.post("/point", content=b'{"x": NaN}', headers={"content-type": "application/json"})
        assert fields(r) == [(["body", "x"], "finite_number")]
        assert (await c.post("/point", json={"x": 1.5, "meta": {"note": "NaN"}})).json() == {"x": 1.5}
        # opting in: a model's config, or one parameter's Field
        r = await c.post("/loose", content=b'{"x": NaN}', headers={"content-type": "application/json"})
        assert (r.status_code, r.content) == (200, b'{"x":null}')  # and never echoed as a bare NaN
        r = await c.post("/opted", content=b'{"value": Infinity}', headers={"content-type": "application/json"})
        assert r.json() == {"finite": False}


def test_a_passthrough_input_schema_opts_in_to_nan_by_its_config() -> None:
    relay = Chute(username="tests", name="relay", image="tests/relay")

    @relay.cord(public_api_path="/loose", passthrough=True, passthrough_port=9, input_schema=Loose)
    async def loose(self, data: Loose) -> Loose:
        return data

    @relay.cord(public_api_path="/strict", passthrough=True, passthrough_port=9, input_schema=Point)
    async def strict(self, data: Point) -> Point:
        return data

    assert [c.binding.finite for c in relay.cords] == [False, True]
