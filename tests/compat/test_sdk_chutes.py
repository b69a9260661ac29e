"""Chute files written as Chutes platform SDK users write them: imported, described, and called."""

from __future__ import annotations

import importlib
import json

import httpx
import pytest

from chutes.chute import Chute, ChutePack, NodeSelector
from chutes.exception import DuplicatePath, InvalidPath
from chutes.testing import client


def load(name: str) -> Chute:
    """Imports a fixture chute file afresh, and returns its chute (the pack's, for a template)."""
    module = importlib.reload(importlib.import_module(f"tests.compat.chutes.{name}"))
    return module.chute.chute if isinstance(module.chute, ChutePack) else module.chute


def test_names_keywords_and_platform_features_land_in_the_manifest() -> None:
    chute = load("sdk_basic")
    manifest = chute.manifest()
    assert (manifest["slug"], manifest["username"], manifest["name"]) == ("myuser-kokoro-82m", "myuser", "kokoro-82m")
    assert manifest["display_name"] == "Kokoro-82M" and chute.name == "Kokoro-82M"
    assert manifest["revision"] == "0123456789abcdef"
    assert manifest["platform"] == {"tee": True, "encrypted_fs": True, "lock_modules": False}
    ignored = "\n".join(manifest["ignored"])
    assert "tee=True" in ignored and "encrypted_fs=True" in ignored and "lock_modules" not in ignored
    assert "max_hourly_price_per_gpu" in ignored
    assert "keys this host does not know were ignored: gpu_typo" in ignored
    assert "gpu_typo" not in manifest["node_selector"]
    schema = next(c for c in chute.cords if c.name == "schema")
    assert schema.input_json_schema["required"] == ["q"]
    assert next(c for c in chute.cords if c.name == "speak").output_schema == {"type": "object"}


async def test_a_lone_dict_list_or_any_parameter_is_the_whole_body() -> None:
    async with client(load("sdk_basic")) as c:
        assert (await c.post("/speak", json={"text": "hi"})).json() == {"said": "hi", "speed": 1.0}
        assert (await c.post("/configure", json={"a": 1, "b": [2]})).json() == {"got": {"a": 1, "b": [2]}}
        assert (await c.post("/many", json=[1, 2, 3])).json() == {"sum": 6}
        assert (await c.post("/anything", json="text")).json() == {"type": "str"}
        assert (await c.post("/schema", json={"q": "x", "k": 1})).json() == {"q": "x", "keys": ["k", "q"]}
        assert (await c.get("/voices")).json() == {"af": "American female"}
        paths = (await c.get("/openapi.json")).json()["paths"]
        schema = paths["/schema"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert schema["required"] == ["q"]
        assert paths["/speak"]["post"]["responses"]["200"]["content"]["application/json"]["schema"] == {
            "type": "object"
        }
        refused = await c.post("/configure", json=[1])
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["type"] == "dict_type"
        # the object whose only key is the parameter's name binds it by name, as direct parameters do
        assert (await c.post("/many", json={"items": [1]})).json() == {"sum": 1}
        assert (await c.post("/configure", json={"data": {"a": 1}})).json() == {"got": {"a": 1}}
        assert (await c.post("/anything", json={"payload": 3})).json() == {"type": "int"}
        wrong = await c.post("/many", json={"items": ["x"]})
        assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "items", 0]
        assert (await c.post("/many", json={"items": [1], "more": 2})).status_code == 422
        assert (
            await c.post("/configure", content=b"{not json", headers={"content-type": "application/json"})
        ).status_code == 422


def test_the_stream_pair_and_both_paths_are_served_over_http(live_server) -> None:
    chute = load("sdk_llm_shapes")
    assert chute.slug == "myuser-unsloth-llama-3-2-1b-instruct"
    url = live_server(chute)
    body = {"messages": [{"role": "user", "content": "hello there"}]}
    with httpx.Client(base_url=url) as http:
        plain = http.post("/v1/chat/completions", json=body)
        assert plain.json() == {"choices": [{"message": {"content": "HELLO THERE"}}]}
        assert http.post("/v1/chat/completions", json={**body, "stream": False}).json() == plain.json()
        with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as streamed:
            assert streamed.headers["content-type"].startswith("text/event-stream")
            frames = [json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: ")]
        assert [f["choices"][0]["delta"]["content"] for f in frames] == ["hello", "there"]
        assert http.post("/chat", json=body).json() == plain.json()  # the cord's own path= route
        assert http.post("/chat_stream", json=body).headers["content-type"].startswith("text/event-stream")
        assert http.post("/tokenize", json={"prompt": "a b"}).json() == {"tokens": ["a", "b"]}
        assert http.post("/do_tokenize", json={"prompt": "a b"}).json() == {"tokens": ["a", "b"]}
        bad = http.post("/v1/chat/completions", content=b"[1", headers={"content-type": "application/json"})
        assert bad.status_code == 422  # not JSON: the non-streaming cord answers it as it would alone


def test_passthrough_defaults_to_the_sdk_port() -> None:
    chute = new_chute()

    @chute.cord(passthrough=True, public_api_path="/upstream")
    async def upstream(self, data):
        return data

    assert (chute.cords[0].passthrough_port, chute.cords[0].passthrough_path) == (8000, "/upstream")
    assert chute.upstream_ports() == [8000]


def new_chute(name: str = "pairs") -> Chute:
    return Chute(username="me", name=name, image="me/img", node_selector=NodeSelector(gpu_count=0))


def test_only_a_streaming_and_a_plain_cord_may_share_a_path() -> None:
    chute = new_chute()

    @chute.cord(public_api_path="/x")
    async def one(self, data: dict) -> dict:
        return data

    with pytest.raises(DuplicatePath, match="POST /x is already served by cord 'one'"):

        @chute.cord(public_api_path="/x")
        async def two(self, data: dict) -> dict:
            return data

    @chute.cord(public_api_path="/x", stream=True)
    async def three(self, data: dict):
        yield data

    with pytest.raises(DuplicatePath, match="only a stream=True and a non-streaming cord may share one"):

        @chute.cord(public_api_path="/x", stream=True)
        async def four(self, data: dict):
            yield data

    with pytest.raises(InvalidPath, match="no spaces"):

        @chute.cord(public_api_path="/has space")
        async def five(self) -> dict:
            return {}


@pytest.mark.parametrize(
    ("username", "name", "slug"),
    [
        ("MyUser", "Kokoro-82M", "myuser-kokoro-82m"),
        ("chutes", "unsloth/Llama-3.2-1B-Instruct", "chutes-unsloth-llama-3-2-1b-instruct"),
        ("me", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "me-deepseek-ai-deepseek-r1-distill-qwen-1-5b"),
        ("me", "my_chute", "me-my_chute"),
        ("your-username", "robot-policy", "your-username-robot-policy"),  # the platform allows '-' in usernames
    ],
)
def test_names_fold_into_one_hostname_label(username: str, name: str, slug: str) -> None:
    chute = Chute(username=username, name=name, image="me/img")
    assert chute.slug == slug
    assert chute.manifest()["slug"] == f"{chute.manifest()['username']}-{chute.manifest()['name']}"


def test_a_long_name_is_capped_with_a_hash_that_tells_names_apart() -> None:
    a = Chute(username="someone", name="org/" + "a-very-long-model-name-" * 4 + "one", image="me/img")
    b = Chute(username="someone", name="org/" + "a-very-long-model-name-" * 4 + "two", image="me/img")
    assert len(a.slug) <= 63 and len(b.slug) <= 63
    assert a.slug != b.slug
    assert a.slug.startswith("someone-org-a-very-long-model-name-")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "voice@home"}, "name 'voice@home' cannot be made a hostname label: it holds '@'"),
        ({"name": "//"}, "cannot be made a hostname label"),
        ({"username": "me.you"}, "username 'me.you' may hold only letters"),
        ({"username": "x" * 60, "name": "model"}, "use a shorter username"),
        ({"revision": "a\nb"}, "revision must be one line of text"),
    ],
)
def test_names_that_cannot_be_a_hostname_are_refused_with_the_fix(options, message) -> None:
    with pytest.raises(ValueError) as info:
        Chute(**{"username": "me", "name": "model", "image": "me/img", **options})
    assert message in str(info.value)
