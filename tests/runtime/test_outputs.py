"""What cords send back: JSON, Response objects, media types, and errors."""

from __future__ import annotations

import logging

from chutes.testing import client
from tests.fixtures.chutes.outputs import chute


async def test_results_are_json_by_default() -> None:
    async with client(chute) as c:
        for path, expected in [
            ("/model", {"text": "hi", "score": 0.5}),
            ("/list", [1, "two", {"three": 3}]),
            ("/scalar", 42),
            ("/text", "plain"),
        ]:
            r = await c.get(path)
            assert (r.status_code, r.headers["content-type"], r.json()) == (200, "application/json", expected)


async def test_bytes_and_str_take_the_output_content_type() -> None:
    async with client(chute) as c:
        r = await c.get("/image")
        assert (r.headers["content-type"], r.content) == ("image/png", b"\x89PNG\r\n\x1a\n")
        r = await c.get("/csv")
        assert (r.headers["content-type"], r.text) == ("text/csv; charset=utf-8", "a,b\n1,2\n")


async def test_response_objects_are_sent_as_they_are() -> None:
    async with client(chute) as c:
        r = await c.get("/response")
        assert (r.status_code, r.text, r.headers["x-custom"]) == (201, "Custom", "value")
        assert r.headers["content-type"].startswith("text/plain")


async def test_http_exception_keeps_status_detail_and_headers() -> None:
    async with client(chute) as c:
        r = await c.get("/http-error")
        assert (r.status_code, r.json(), r.headers["x-teapot"]) == (418, {"detail": "short and stout"}, "yes")


async def test_other_exceptions_are_500_json_logged_and_the_chute_keeps_serving(caplog) -> None:
    async with client(chute) as c:
        with caplog.at_level(logging.ERROR, logger="chutes"):
            r = await c.get("/crash")
        assert (r.status_code, r.json()) == (500, {"detail": "Internal Server Error"})
        assert "the model fell over" not in r.text
        assert any("crash" in rec.getMessage() and rec.exc_info for rec in caplog.records)
        assert (await c.get("/scalar")).json() == 42


async def test_dev_mode_puts_the_traceback_in_the_body() -> None:
    chute.dev = True
    try:
        async with client(chute) as c:
            r = await c.get("/crash")
    finally:
        chute.dev = False
    assert r.status_code == 500
    assert r.json()["detail"] == "ValueError: the model fell over"
    assert "Traceback" in r.json()["traceback"] and "outputs.py" in r.json()["traceback"]


async def test_a_result_that_is_not_json_is_a_clear_500() -> None:
    async with client(chute) as c:
        r = await c.get("/not-json")
        assert r.status_code == 500
        assert "cannot be sent as JSON" in r.json()["detail"]
