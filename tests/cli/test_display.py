"""How invoke reads streams and error bodies, in-process: the parts whose edge cases matter."""

from __future__ import annotations

import json

import pytest

from chutes_cli.display import describe_detail, is_textual, iter_sse
from chutes_cli.errors import CLIError
from chutes_cli.payload import build_payload

STREAM = b'data: {"a":1}\n\n: a comment\nevent: error\ndata: {"detail":"x"}\n\ndata: line one\r\ndata: line two\r\n\r\n'


@pytest.mark.parametrize("size", [1, 2, 5, 7, len(STREAM)])
def test_sse_events_survive_any_chunking(size: int):
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert list(iter_sse(chunks)) == [
        ("message", '{"a":1}'),
        ("error", '{"detail":"x"}'),
        ("message", "line one\nline two"),
    ]


def test_unterminated_last_event_is_still_delivered():
    assert list(iter_sse([b"data: tail"])) == [("message", "tail")]


def test_detail_of_validation_errors_names_each_field():
    body = json.dumps(
        {
            "detail": [
                {"loc": ["body", "text"], "msg": "Field required", "type": "missing"},
                {"loc": ["query", "n"], "msg": "Input should be a valid integer", "type": "int_parsing"},
            ]
        }
    )
    assert describe_detail(body) == "text: Field required; n: Input should be a valid integer"


def test_detail_of_other_bodies():
    assert describe_detail('{"detail": "nope"}') == "nope"
    assert describe_detail("plain text\n") == "plain text"
    assert describe_detail("") == "(empty body)"


@pytest.mark.parametrize(
    ("content_type", "textual"),
    [
        ("application/json", True),
        ("text/plain; charset=utf-8", True),
        ("application/x-ndjson", True),
        ("application/problem+json", True),
        ("image/png", False),
        ("application/octet-stream", False),
        (None, False),
    ],
)
def test_textual_content_types(content_type, textual):
    assert is_textual(content_type) is textual


def test_json_payload_of_a_delete_goes_to_the_query():
    payload = build_payload("DELETE", json_text='{"id": 3, "tags": ["a", "b"], "force": true}', data=None, forms=[])
    assert payload.body is None
    assert payload.query == "id=3&tags=a&tags=b&force=true"


def test_json_array_for_a_get_is_refused():
    with pytest.raises(CLIError, match="object of parameters"):
        build_payload("GET", json_text="[1, 2]", data=None, forms=[])


def test_form_fields_and_files_are_multipart(tmp_path):
    upload = tmp_path / "a.txt"
    upload.write_bytes(b"hello")
    payload = build_payload("POST", json_text=None, data=None, forms=["note=hi", f"file=@{upload};type=text/x-demo"])
    boundary = payload.content_type.split("boundary=")[1]
    assert payload.content_type.startswith("multipart/form-data; boundary=")
    assert (
        payload.body
        == (
            f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
            f"Content-Type: text/x-demo\r\n\r\nhello\r\n--{boundary}--\r\n"
        ).encode()
    )
