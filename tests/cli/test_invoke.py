"""`chutes invoke` against a real `chutes run` server: JSON, query, upload, streams, errors."""

from __future__ import annotations

import json
import os
import pty
import selectors
import subprocess
import time
from pathlib import Path

from tests.cli.conftest import CHUTES, free_port


def test_json_body_is_sent_and_the_answer_pretty_printed(chutes, basic_server):
    result = chutes("invoke", "/echo", "--json", '{"text": "ab", "times": 2}', "--url", basic_server.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{\n  "text": "abab",\n  "times": 2\n}\n'


def test_get_with_query_options_and_with_a_query_in_the_path(chutes, basic_server):
    by_option = chutes("invoke", "/hello", "-q", "name=Ada Lovelace", "--url", basic_server.url)
    in_path = chutes("invoke", "/hello?name=Bo", "--url", basic_server.url)
    assert json.loads(by_option.stdout) == {"message": "Hello, Ada Lovelace!"}
    assert json.loads(in_path.stdout) == {"message": "Hello, Bo!"}


def test_json_of_a_get_goes_into_the_query_string(chutes, basic_server):
    result = chutes("invoke", "/hello", "-X", "GET", "--json", '{"name": "Cy"}', "--url", basic_server.url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"message": "Hello, Cy!"}


def test_file_upload_with_form_option(chutes, basic_server, tmp_path: Path):
    upload = tmp_path / "weights.bin"
    upload.write_bytes(b"HELLO" + bytes(1000))
    result = chutes("invoke", "/upload", "-F", f"file=@{upload}", "--url", basic_server.url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"filename": "weights.bin", "size": 1005, "head": "HELLO"}


def test_data_from_a_file(chutes, basic_server, tmp_path: Path):
    body = tmp_path / "input.json"
    body.write_text('{"text": "x", "times": 3}')
    result = chutes("invoke", "/echo", "--data", f"@{body}", "--url", basic_server.url)
    assert json.loads(result.stdout) == {"text": "xxx", "times": 3}


def test_stream_prints_one_line_per_event(chutes, basic_server):
    result = chutes("invoke", "/stream", "--json", '{"count": 3}', "--url", basic_server.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['{"chunk":0}', '{"chunk":1}', '{"chunk":2}']


def test_raw_stream_prints_the_frames_as_received(chutes, basic_server):
    result = chutes("invoke", "/stream", "--json", '{"count": 2}', "--raw", "--url", basic_server.url)
    assert result.stdout == 'data: {"chunk":0}\n\ndata: {"chunk":1}\n\n'


def test_streamed_events_are_printed_before_the_stream_ends(basic_server, cli_env, tmp_path: Path):
    gate = tmp_path / "gate"
    process = subprocess.Popen(
        [CHUTES, "invoke", "/gated", "--json", json.dumps({"gate": str(gate)}), "--url", basic_server.url],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=10), "no output while the stream was still open"
        first = process.stdout.readline()
        # The cord cannot end before the gate exists, so this line came mid-stream.
        assert json.loads(first) == {"step": "first"}
        assert process.poll() is None
        gate.touch()
        rest, err = process.communicate(timeout=15)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, err
    assert json.loads(rest) == {"step": "last", "gate_seen": True}


def test_http_error_exits_non_zero_with_status_and_detail(chutes, basic_server):
    result = chutes("invoke", "/teapot", "--json", "{}", "--url", basic_server.url)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "418" in result.stderr
    assert "I'm a teapot, no earl grey" in result.stderr
    assert result.stderr.startswith("Error: ")
    assert "Traceback" not in result.stderr


def test_validation_error_names_the_field(chutes, basic_server):
    result = chutes("invoke", "/echo", "--json", '{"times": 2}', "--url", basic_server.url)
    assert result.returncode == 1
    assert "422" in result.stderr
    assert "text: Field required" in result.stderr


def test_wrong_method_gets_a_hint(chutes, basic_server):
    result = chutes("invoke", "/echo", "--url", basic_server.url)
    assert result.returncode == 1
    assert "405" in result.stderr
    assert "--method" in result.stderr


def test_binary_answer_is_saved_with_output(chutes, basic_server, tmp_path: Path):
    target = tmp_path / "out" / "picture.png"
    target.parent.mkdir()
    result = chutes("invoke", "/image", "--output", str(target), "--url", basic_server.url)
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    assert "saved 264 bytes (image/png)" in result.stderr
    assert [p.name for p in target.parent.iterdir()] == ["picture.png"]


def test_binary_answer_is_refused_on_a_terminal(basic_server, cli_env):
    leader, follower = pty.openpty()
    try:
        process = subprocess.run(
            [CHUTES, "invoke", "/image", "--url", basic_server.url],
            env=cli_env,
            stdout=follower,
            stderr=subprocess.PIPE,
            timeout=30,
        )
        os.set_blocking(leader, False)
        try:
            printed = os.read(leader, 4096)
        except BlockingIOError:
            printed = b""
    finally:
        os.close(leader)
        os.close(follower)
    assert process.returncode == 1
    assert b"--output" in process.stderr
    assert b"PNG" not in printed


def test_deployed_chute_is_called_through_the_configured_host(chutes, basic_server):
    env = {"CHUTES_API_URL": basic_server.url, "CHUTES_API_KEY": "cpk_secret_key_1234"}
    result = chutes("invoke", "/headers", "--chute", "tester/cli-basic", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "host": f"tester-cli-basic.localhost:{basic_server.port}",
        "authorization": "Bearer cpk_secret_key_1234",
    }


def test_host_option_names_the_host_of_a_deployed_chute(chutes, basic_server):
    env = {"CHUTES_API_URL": "http://127.0.0.1:9", "CHUTES_API_KEY": "cpk_secret_key_1234"}
    result = chutes("invoke", "/headers", "--chute", "tester/cli-basic", "--host", basic_server.url + "/", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["host"] == f"tester-cli-basic.localhost:{basic_server.port}"


def test_host_option_without_chute_or_with_a_bad_url_is_a_usage_error(chutes):
    alone = chutes("invoke", "/hello", "--host", "http://127.0.0.1:8080")
    assert alone.returncode == 2
    assert "--host goes with --chute" in alone.stderr
    bad = chutes("invoke", "/hello", "--chute", "a/b", "--host", "127.0.0.1:8080")
    assert bad.returncode == 2
    assert "--host must be the host's http:// or https:// URL" in bad.stderr


def test_unreachable_url(chutes):
    start = time.monotonic()
    result = chutes("invoke", "/echo", "--json", "{}", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "cannot reach" in result.stderr and "chutes run" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - start < 10


def test_invalid_json_is_a_usage_error(chutes):
    result = chutes("invoke", "/echo", "--json", "{text: 1}")
    assert result.returncode == 2
    assert result.stderr.startswith("Error: --json is not valid JSON")
    assert "Traceback" not in result.stderr


def test_two_bodies_are_refused(chutes):
    result = chutes("invoke", "/echo", "--json", "{}", "--data", "x")
    assert result.returncode == 2
    assert "use only one" in result.stderr


def test_chute_without_a_configured_host(chutes):
    result = chutes("invoke", "/echo", "--chute", "tester/cli-basic")
    assert result.returncode == 1
    assert "chutes config set api_url" in result.stderr


def test_missing_upload_file(chutes, tmp_path: Path):
    result = chutes("invoke", "/upload", "-F", f"file=@{tmp_path / 'nope.bin'}")
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_error_event_mid_stream_exits_non_zero(chutes, basic_server):
    result = chutes("invoke", "/explode", "--json", "{}", "--url", basic_server.url)
    assert result.returncode == 1
    assert result.stdout == '{"chunk":0}\n'
    assert result.stderr.startswith("Error: the stream ended with an error:")
    assert "Traceback" not in result.stderr


def test_json_lines_stream_is_printed_as_it_comes(chutes, basic_server):
    result = chutes("invoke", "/lines", "--json", '{"count": 3}', "--url", basic_server.url)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [{"line": 0}, {"line": 1}, {"line": 2}]


def test_headers_are_sent(chutes, basic_server):
    result = chutes("invoke", "/headers", "-H", "Authorization: Bearer abc", "--url", basic_server.url)
    assert json.loads(result.stdout)["authorization"] == "Bearer abc"


def test_bad_header_is_a_usage_error(chutes):
    result = chutes("invoke", "/headers", "-H", "no colon here")
    assert result.returncode == 2
    assert "-H takes 'Name: value'" in result.stderr


def test_data_from_stdin(basic_server, cli_env):
    result = subprocess.run(
        [CHUTES, "invoke", "/echo", "--data", "@-", "--url", basic_server.url],
        input='{"text": "in"}',
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert json.loads(result.stdout) == {"text": "in", "times": 1}


def test_json_on_a_terminal_is_pretty_printed(basic_server, cli_env):
    leader, follower = pty.openpty()
    try:
        process = subprocess.run(
            [CHUTES, "invoke", "/echo", "--json", '{"text": "tty"}', "--url", basic_server.url],
            env=cli_env,
            stdout=follower,
            stderr=subprocess.PIPE,
            timeout=30,
        )
        os.set_blocking(leader, False)
        printed = os.read(leader, 65536).decode()
    finally:
        os.close(leader)
        os.close(follower)
    assert process.returncode == 0, process.stderr
    assert '"tty"' in printed and '"times"' in printed
