"""Every code example of cords.md, run as written and called over HTTP.

Each example lives verbatim in a fixture module tests/fixtures/chutes/docs_*.py; the objects an
example uses but never defines (self.model, logger, ...) come from docs_support.py.
"""

# ruff: noqa: E402, I001
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import io
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path

import httpx
import jwt
import pytest
import uvicorn
from httpx import ASGITransport  # the Unit Testing example's httpx 0.28 spelling needs it

from chutes.testing import client
from tests.fixtures.chutes.docs_self_parameter import chute
from tests.fixtures.chutes.docs_support import TinyModel, TinySpeech

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "chutes"
REPO = FIXTURES.parent.parent.parent
IGNORE_PYDANTIC_V1 = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")
# The Authentication example signs with the 6-byte key "secret", which PyJWT warns about on every call.
IGNORE_SHORT_JWT_KEY = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
_loads = itertools.count()


def load_chute(name: str):
    """Imports tests/fixtures/chutes/{name}.py afresh, and returns its chute (new state per test)."""
    module_name = f"docs_example_{name}_{next(_loads)}"
    spec = importlib.util.spec_from_file_location(module_name, FIXTURES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module.chute


def sse_events(body: str) -> list[dict]:
    """Takes an SSE body of `data: <json>` frames, and returns the decoded items."""
    assert body.endswith("\n\n"), body
    frames = body.split("\n\n")[:-1]
    assert all(f.startswith("data: ") for f in frames), frames
    return [json.loads(f.removeprefix("data: ")) for f in frames]


def assert_field_error(response: httpx.Response, loc: list, error_type: str) -> dict:
    """Asserts a 422 whose field errors hold one at `loc` of `error_type`, and returns it."""
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    matching = [e for e in errors if e["loc"] == loc]
    assert matching, f"no error at {loc}: {errors}"
    assert matching[0]["type"] == error_type, matching
    assert matching[0]["msg"]
    return matching[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# fmt: off
# cords.md section: Testing Cords / Unit Testing (verbatim but for the ASGITransport spelling);
# `chute` is the Self Parameter example's, whose /predict answers with "result".
import pytest
from httpx import AsyncClient

@pytest.mark.asyncio
async def test_predict_endpoint():
    async with AsyncClient(transport=ASGITransport(app=chute), base_url="http://test") as client:
        response = await client.post(
            "/predict",
            json={"text": "Hello world"}
        )
        assert response.status_code == 200
        data = response.json()
        assert "result" in data
# end of the Unit Testing example
# fmt: on


async def test_what_is_a_cord_predicts_with_the_model():
    async with client(load_chute("docs_what_is_a_cord")) as c:
        response = await c.post("/predict", json={"text": "I love this"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"prediction": "positive"}
        assert_field_error(await c.post("/predict", json={}), ["body", "text"], "missing")


async def test_simple_cord_says_hello():
    async with client(load_chute("docs_basic_cord")) as c:
        response = await c.post("/hello", json={"name": "Ada"})
        assert response.status_code == 200
        assert response.json() == {"message": "Hello, Ada!"}
        assert_field_error(await c.post("/hello", json={"name": 3}), ["body", "name"], "string_type")
        assert_field_error(await c.post("/hello", json={"name": "Ada", "age": 3}), ["body", "age"], "extra_forbidden")


async def test_input_validation_greets_in_each_language():
    async with client(load_chute("docs_basic_cord")) as c:
        assert (await c.post("/greet", json={"name": "Ada"})).json() == {"greeting": "Hello, Ada!"}
        for language, greeting in [("es", "¡Hola, Ada!"), ("fr", "Bonjour, Ada!"), ("de", "Hallo, Ada!")]:
            response = await c.post("/greet", json={"name": "Ada", "language": language})
            assert response.status_code == 200
            assert response.json() == {"greeting": greeting}
        invalid = await c.post("/greet", json={"name": "Ada", "language": "it"})
        assert_field_error(invalid, ["body", "language"], "string_pattern_mismatch")
        assert_field_error(await c.post("/greet", json={"name": ""}), ["body", "name"], "string_too_short")
        assert_field_error(await c.post("/greet", json={"name": "x" * 101}), ["body", "name"], "string_too_long")


async def test_public_api_path_serves_both_paths():
    async with client(load_chute("docs_public_api_path")) as c:
        for path in ("/predict", "/api/v1/generate"):
            response = await c.post(path, json={"text": "hi"})
            assert response.status_code == 200, path
            assert response.json() == {"text": "hi"}


async def test_method_routes_get_and_put():
    async with client(load_chute("docs_method")) as c:
        response = await c.get("/status")
        assert response.status_code == 200
        assert response.json() == {"status": "healthy"}
        wrong = await c.post("/status")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "GET, HEAD"
        assert (await c.put("/update", json={"config": {"batch": 8}})).json() == {"updated": True}
        # a lone `dict` parameter is also the whole body, as in FastAPI and the Chutes platform's SDK
        assert (await c.put("/update", json={"batch": 8})).json() == {"updated": True}
        assert_field_error(await c.put("/update", json=[1]), ["body"], "dict_type")
        assert (await c.post("/update", json={"config": {}})).status_code == 405


async def test_input_schema_validates_and_coerces():
    async with client(load_chute("docs_input_schema")) as c:
        response = await c.post("/predict", json={"text": "one two three", "max_length": "5", "temperature": 1})
        assert response.status_code == 200
        assert response.json() == {"text": "three", "max_length": 5, "temperature": 1.0, "options": {}}
        defaults = await c.post("/predict", json={"text": "a b"})
        assert defaults.json() == {"text": "b a", "max_length": 100, "temperature": 0.7, "options": {}}
        too_hot = await c.post("/predict", json={"text": "a", "temperature": 2.5})
        assert_field_error(too_hot, ["body", "temperature"], "less_than_equal")
        assert_field_error(await c.post("/predict", json={"text": "a", "max_length": 0}), ["body", "max_length"],
                           "greater_than_equal")  # fmt: skip
        assert_field_error(await c.post("/predict", json={}), ["body", "text"], "missing")


@IGNORE_PYDANTIC_V1
async def test_minimal_input_schema_takes_the_minimal_body_and_is_documented():
    chute = load_chute("docs_minimal_input_schema")
    async with client(chute) as c:
        response = await c.post("/generate", json={"text": "hello there"})
        assert response.status_code == 200
        assert response.json() == {
            "text": "there hello",
            "max_length": 100,
            "temperature": 0.7,
            "options": {"top_p": 0.9, "frequency_penalty": 0.0},
        }
        full = await c.post("/generate", json={"text": "a b c", "max_length": 3, "top_p": 0.5})
        assert full.json()["text"] == "c b"
        assert full.json()["options"]["top_p"] == 0.5
        assert_field_error(await c.post("/generate", json={"text": "a", "top_p": 2}), ["body", "top_p"],
                           "less_than_equal")  # fmt: skip
        document = (await c.get("/openapi.json")).json()
        operation = document["paths"]["/generate"]["post"]
        assert operation["x-chutes-minimal-input-schema"] == {"$ref": "#/components/schemas/SimpleInput"}
        assert document["components"]["schemas"]["SimpleInput"]["required"] == ["text"]


async def test_output_content_type_sends_image_and_audio():
    async with client(load_chute("docs_output_content_type")) as c:
        image = await c.post("/generate-image", json={"prompt": "a red fox"})
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/jpeg"
        assert image.content == await TinyModel().generate_image("a red fox")
        assert image.content.startswith(b"\xff\xd8") and image.content.endswith(b"\xff\xd9")
        audio = await c.post("/generate-audio", json={"text": "hello"})
        assert audio.status_code == 200
        assert audio.headers["content-type"] == "audio/wav"
        with wave.open(io.BytesIO(audio.content)) as wav:
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
            assert wav.getnframes() == 8000 * len("hello") // 100


async def test_stream_sends_each_token_as_an_sse_frame():
    async with client(load_chute("docs_stream")) as c:
        response = await c.post("/stream-generate", json={"prompt": "the quick fox"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert sse_events(response.text) == [
            {"token": "the", "done": False},
            {"token": "quick", "done": False},
            {"token": "fox", "done": False},
            {"token": "", "done": True},
        ]
        assert_field_error(await c.post("/stream-generate", json={}), ["body", "prompt"], "missing")


async def serve_upstream(sock: socket.socket) -> tuple[uvicorn.Server, asyncio.Task]:
    """Serves, on `sock`, an app that answers 201 with what it received, and returns once it listens."""

    async def echo(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        payload = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode(),
            "body": json.loads(body),
            "x_trace": headers.get("x-trace"),
        }
        await send(
            {"type": "http.response.start", "status": 201,
             "headers": [(b"content-type", b"application/json"), (b"x-upstream", b"echo")]}
        )  # fmt: skip
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})

    server = uvicorn.Server(uvicorn.Config(echo, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            return server, task
        await asyncio.sleep(0.01)
    raise AssertionError("the upstream server did not start")


async def test_passthrough_forwards_to_port_8000_and_502_when_it_is_down():
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a previous run's connections may linger
    try:
        sock.bind(("127.0.0.1", 8000))  # the port the example names
    except OSError:
        sock.close()
        pytest.skip("127.0.0.1:8000, where the passthrough example forwards, is in use by another process")
    server, task = await serve_upstream(sock)
    try:
        async with client(load_chute("docs_passthrough")) as c:
            response = await c.post(
                "/v1/chat/completions?stream=false",
                json={"messages": [{"role": "user", "content": "hi"}]},
                headers={"X-Trace": "abc"},
            )
            assert response.status_code == 201
            assert response.headers["x-upstream"] == "echo"
            assert response.json() == {
                "method": "POST",
                "path": "/v1/chat/completions",
                "query": "stream=false",
                "body": {"messages": [{"role": "user", "content": "hi"}]},
                "x_trace": "abc",
            }
            server.should_exit = True
            await task
            sock.close()
            down = await c.post("/v1/chat/completions", json={"messages": []})
            assert down.status_code == 502
            assert down.json()["detail"]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_self_parameter_keeps_state_across_requests():
    async with client(load_chute("docs_self_parameter")) as c:
        first = await c.post("/predict", json={"text": "a good day"})
        second = await c.post("/predict", json={"text": "a sad day"})
        assert first.json() == {"result": "positive", "count": 1}
        assert second.json() == {"result": "negative", "count": 2}


async def test_direct_parameters_take_defaults_and_reject_bad_types():
    async with client(load_chute("docs_signatures")) as c:
        assert (await c.post("/simple", json={"text": "hi"})).json() == {"text": "hi", "temperature": 0.7}
        response = await c.post("/simple", json={"text": "hi", "temperature": 1})
        assert response.json() == {"text": "hi", "temperature": 1.0}
        hot = await c.post("/simple", json={"text": "hi", "temperature": "hot"})
        assert_field_error(hot, ["body", "temperature"], "float_parsing")
        assert_field_error(await c.post("/simple", json={"temperature": 1}), ["body", "text"], "missing")


async def test_pydantic_model_input_reads_top_level_fields():
    async with client(load_chute("docs_signatures")) as c:
        assert (await c.post("/validated", json={"text": "x"})).json() == {"processed": "x"}
        assert_field_error(await c.post("/validated", json={"txt": "x"}), ["body", "text"], "missing")


async def test_return_types_json_custom_response_and_stream():
    async with client(load_chute("docs_signatures")) as c:
        response = await c.post("/json", json={"text": "anything"})
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"result": "processed"}
        custom = await c.post("/custom", json={"data": "ignored"})
        assert custom.status_code == 200
        assert custom.headers["content-type"].startswith("text/plain")
        assert custom.headers["x-custom-header"] == "value"
        assert custom.text == "Custom content"
        stream = await c.post("/stream", json={"prompt": "p"})
        assert stream.headers["content-type"] == "text/event-stream"
        assert sse_events(stream.text) == [{"chunk": i, "data": f"Generated text {i}"} for i in range(10)]


async def test_error_handling_maps_errors_to_http_exceptions(caplog):
    async with client(load_chute("docs_advanced")) as c:
        empty = await c.post("/predict", json={"text": "   "})
        assert empty.status_code == 400
        assert empty.json() == {"detail": "Text cannot be empty"}
        failed = await c.post("/predict", json={"text": "boom"})
        assert failed.status_code == 500
        assert failed.json() == {"detail": "Prediction failed"}
        assert "Prediction failed: the model cannot read 'boom'" in caplog.text
        assert (await c.post("/predict", json={"text": "great"})).json() == {"prediction": "positive"}


async def test_request_context_sees_client_and_user_agent():
    async with client(load_chute("docs_advanced")) as c:
        response = await c.post("/context", json={"text": "bad"}, headers={"User-Agent": "docs-test/1.0"})
        assert response.status_code == 200
        assert response.json() == {
            "result": "negative",
            "metadata": {"client_ip": "127.0.0.1", "user_agent": "docs-test/1.0"},
        }
        assert_field_error(await c.post("/context", json={}), ["body", "text"], "missing")


async def test_file_upload_reads_a_multipart_file():
    async with client(load_chute("docs_advanced")) as c:
        data = b"line one\nline two\n"
        response = await c.post("/upload", files={"file": ("notes.txt", data, "text/plain")})
        assert response.status_code == 200
        assert response.json() == {
            "filename": "notes.txt",
            "size": len(data),
            "result": {"sha256": hashlib.sha256(data).hexdigest(), "content_type": "text/plain"},
        }
        missing = await c.post("/upload", files={"other": ("x.txt", b"x", "text/plain")})
        assert_field_error(missing, ["body", "file"], "missing")


async def test_response_headers_are_sent():
    async with client(load_chute("docs_advanced")) as c:
        response = await c.post("/with-headers", json={"text": "love it"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-processing-time"] == "123ms"
        assert response.headers["x-model-version"] == "tiny-1.0"
        assert response.json() == {"result": "positive"}


async def test_text_streaming_sends_openai_style_chunks():
    async with client(load_chute("docs_streaming")) as c:
        response = await c.post("/stream-text", json={"prompt": "hi there"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        events = sse_events(response.text)
        assert [e["choices"][0]["delta"] for e in events] == [{"content": "hi"}, {"content": "there"}, {}]
        assert [e["choices"][0]["finish_reason"] for e in events] == [None, None, "stop"]


async def test_binary_streaming_sends_wav_bytes_verbatim():
    async with client(load_chute("docs_streaming")) as c:
        response = await c.post("/stream-audio", json={"text": "streamed speech"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/wav"
        assert response.content == await TinySpeech().synthesize("streamed speech")
        with wave.open(io.BytesIO(response.content)) as wav:
            assert wav.getnframes() == 8000 * len("streamed speech") // 100


async def test_server_sent_events_are_sent_as_yielded():
    async with client(load_chute("docs_streaming")) as c:
        response = await c.post("/events", json={"prompt": "a b"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.text == 'data: {"index": 0, "word": "a"}\n\ndata: {"index": 1, "word": "b"}\n\n'


@IGNORE_PYDANTIC_V1
async def test_best_practice_input_validation_strips_and_rejects_blank_text():
    async with client(load_chute("docs_input_validation")) as c:
        response = await c.post("/process_text", json={"text": "  hi there "})
        assert response.status_code == 200
        assert response.json() == {"text": "hi there", "language": "en", "words": 2}
        blank = assert_field_error(await c.post("/process_text", json={"text": "   "}), ["body", "text"], "value_error")
        assert "Text cannot be empty or whitespace only" in blank["msg"]
        assert_field_error(await c.post("/process_text", json={"text": ""}), ["body", "text"], "string_too_short")
        upper = await c.post("/process_text", json={"text": "hi", "language": "EN"})
        assert_field_error(upper, ["body", "language"], "string_pattern_mismatch")


async def test_best_practice_error_handling(caplog):
    async with client(load_chute("docs_best_practices")) as c:
        ok = await c.post("/robust", json={"text": "a great idea"})
        assert ok.json() == {"result": "positive", "status": "success"}
        for text, status, detail in [
            (" ", 400, "Text is required"),
            ("x" * 10001, 413, "Text too long"),
            ("boom", 500, "Internal server error"),
        ]:
            response = await c.post("/robust", json={"text": text})
            assert response.status_code == status, text[:10]
            assert response.json() == {"detail": detail}
        assert "Unexpected error in robust_endpoint: the model cannot read 'boom'" in caplog.text


async def test_best_practice_batches_texts():
    async with client(load_chute("docs_best_practices")) as c:
        texts = ["good", "bad", "meh"] * 30
        # the example's own spelling, {"texts": [...]}, and the SDK's (a lone `list` takes a JSON array) both bind
        for body in ({"texts": texts}, texts):
            response = await c.post("/optimized", json=body)
            assert response.status_code == 200
            assert response.json() == {"results": ["positive", "negative", "neutral"] * 30}
        assert (await c.post("/optimized", json={"texts": ["a", "b"]})).status_code == 200
        for too_many in ({"texts": ["x"] * 101}, ["x"] * 101):
            refused = await c.post("/optimized", json=too_many)
            assert refused.status_code == 413
            assert refused.json() == {"detail": "Too many texts"}
        assert_field_error(await c.post("/optimized", json={"texts": "good"}), ["body", "texts"], "list_type")
        assert_field_error(await c.post("/optimized", json={"text": ["good"]}), ["body"], "list_type")


async def test_best_practice_resource_management_removes_its_temp_file():
    chute = load_chute("docs_best_practices")
    async with client(chute) as c:
        data = bytes(range(256)) * 4
        response = await c.post("/resource-managed", content=data, headers={"Content-Type": "application/octet-stream"})
        assert response.status_code == 200
        assert response.json() == {"result": {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}}
        assert len(chute.temp_files) == 1
        assert not os.path.exists(chute.temp_files[0])


@IGNORE_SHORT_JWT_KEY
async def test_authentication_takes_a_valid_token_and_rejects_others():
    async with client(load_chute("docs_authentication")) as c:
        token = jwt.encode({"username": "ada"}, "secret", algorithm="HS256")
        response = await c.post("/secure", json={"text": "good"}, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert response.json() == {"result": "positive", "user": "ada"}
        missing = await c.post("/secure", json={"text": "good"})
        assert missing.status_code == 401
        assert missing.json() == {"detail": "Missing or invalid token"}
        for header in ("Bearer not-a-jwt", f"Bearer {jwt.encode({'username': 'ada'}, 'other', algorithm='HS256')}"):
            invalid = await c.post("/secure", json={"text": "good"}, headers={"Authorization": header})
            assert invalid.status_code == 401
            assert invalid.json() == {"detail": "Invalid token"}
        basic = await c.post("/secure", json={"text": "good"}, headers={"Authorization": "Basic YWRhOng="})
        assert basic.status_code == 401
        assert basic.json() == {"detail": "Missing or invalid token"}


async def test_rate_limiting_allows_ten_requests_a_minute():
    async with client(load_chute("docs_rate_limiting")) as c:
        for _ in range(10):
            response = await c.post("/rate-limited", json={"text": "happy"})
            assert response.status_code == 200
            assert response.json() == "positive"
        limited = await c.post("/rate-limited", json={"text": "happy"})
        assert limited.status_code == 429
        assert limited.json() == {"detail": "Rate limit exceeded"}


async def test_caching_answers_repeats_from_the_cache():
    async with client(load_chute("docs_caching")) as c:
        first = await c.post("/cached", json={"text": "good"})
        assert first.json() == {"result": "positive", "cached": False}
        again = await c.post("/cached", json={"text": "good"})
        assert again.json() == {"result": "positive", "cached": True}
        other = await c.post("/cached", json={"text": "good", "temperature": 0.1})
        assert other.json() == {"result": "positive", "cached": False}


@pytest.fixture
def local_server():
    """Runs docs_local_testing.py as a script on a free 127.0.0.1 port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "DOCS_HOST": "127.0.0.1", "DOCS_PORT": str(port), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, str(FIXTURES / "docs_local_testing.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def test_local_testing_serves_the_chute_with_uvicorn_run(local_server):
    base_url, process = local_server
    deadline = time.monotonic() + 20
    with httpx.Client(base_url=base_url, timeout=5) as http:
        while True:
            assert process.poll() is None, process.stdout.read().decode()
            with contextlib.suppress(httpx.TransportError):
                if http.get("/_ping").status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server did not answer /_ping within 20s"
            time.sleep(0.05)
        response = http.post("/hello", json={"name": "Ada"})
        assert response.status_code == 200
        assert response.json() == {"message": "Hello, Ada!"}
        assert http.get("/_ready").status_code == 200
    process.terminate()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal: -15 is its normal exit
    assert process.wait(timeout=10) in (0, -15)
    assert "Application shutdown complete" in process.stdout.read().decode()
