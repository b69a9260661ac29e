"""Cords whose `input_schema` is a JSON-schema dict: the body is validated against it, and a schema
that is not valid JSON schema fails when the cord is defined."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chutes.chute import Chute
from chutes.exceptions import CordDefinitionError
from chutes.testing import client
from tests.fixtures.chutes.json_schema_input import chute


async def test_a_body_that_does_not_match_the_schema_gets_422_naming_each_path() -> None:
    async with client(chute) as c:
        r = await c.post("/generate", json={"prompt": "", "steps": "3", "size": "x", "extra": 1})
    assert r.status_code == 422
    assert [(e["loc"], e["type"], e["msg"]) for e in r.json()["detail"]] == [
        (["body"], "additionalProperties", "Additional properties are not allowed ('extra' was unexpected)"),
        (["body", "prompt"], "minLength", "'' should be non-empty"),
        (
            ["body", "size"],
            "anyOf",
            "'x' is not valid under any of the given schemas ('x' is not of type 'integer'; 'x' is not of type 'null')",
        ),
        (["body", "steps"], "type", "'3' is not of type 'integer'"),
    ]


async def test_a_matching_body_reaches_the_cord_and_a_missing_one_names_the_required_keys() -> None:
    async with client(chute) as c:
        ok = await c.post("/generate", json={"prompt": "a cat", "steps": 3, "size": None})
        assert (ok.status_code, ok.json()) == (200, {"prompt": "a cat", "steps": 3})
        empty = await c.post("/generate")
        assert empty.status_code == 422
        assert empty.json()["detail"] == [
            {"type": "required", "loc": ["body"], "msg": "'prompt' is a required property", "input": {}}
        ]
        not_json = await c.post("/generate", content=b"{bad", headers={"content-type": "application/json"})
        assert not_json.status_code == 422 and not_json.json()["detail"][0]["type"] == "json_invalid"


async def test_a_streaming_cord_refuses_before_its_first_item() -> None:
    async with client(chute) as c:
        bad = await c.post("/stream", json={"prompt": "two words", "steps": 0})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["msg"] == "0 is less than the minimum of 1"
        ok = await c.post("/stream", json={"prompt": "two words"})
        assert ok.status_code == 200 and ok.text.count("data: ") == 2


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "objekt"}, "'objekt' is not valid under any of the given schemas (at 'type')"),
        ({"properties": {"n": {"minimum": "1"}}}, "'1' is not of type 'number' (at 'properties/n/minimum')"),
        ({"required": "prompt"}, "'prompt' is not of type 'array' (at 'required')"),
    ],
)
def test_an_invalid_schema_fails_when_the_cord_is_defined(schema: dict, problem: str) -> None:
    bad = Chute(username="tests", name="bad-schema", image="tests/bad-schema")
    with pytest.raises(CordDefinitionError) as caught:

        @bad.cord(public_api_path="/x", input_schema=schema)
        async def x(self, data: dict) -> dict:
            return data

    assert str(caught.value).startswith("cord 'x' (test_json_schema_input.py:")
    assert str(caught.value).endswith(f": input_schema is not a valid JSON schema: {problem}")


def test_jsonschema_is_imported_only_by_a_chute_that_gives_a_schema_dict() -> None:
    code = (
        "import sys; from tests.fixtures.chutes.inputs import chute; assert 'jsonschema' not in sys.modules; "
        "import tests.fixtures.chutes.json_schema_input; assert 'jsonschema' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
