"""`chutes run`: dev mode, reload, signals and shutdown hooks, ports, module and file references."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import httpx
import pytest

from tests.cli.conftest import FIXTURES


def test_dev_mode_prints_cord_urls_and_logs_each_request(chutes, start_server):
    server = start_server("cli_basic.py:chute", "--dev")
    assert f"{server.url}/echo" in server.stdout
    assert f"{server.url}/hello" in server.stdout
    assert f"{server.url}/docs" in server.stdout
    result = chutes("invoke", "/echo", "--json", '{"text": "hi"}', "--url", server.url)
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 5
    while "POST /echo echo 200" not in server.stderr and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "POST /echo echo 200" in server.stderr


def test_dev_mode_puts_the_traceback_in_500_bodies(chutes, start_server):
    server = start_server("cli_basic.py:chute", "--dev")
    result = chutes("invoke", "/crash", "--json", "{}", "--url", server.url)
    assert result.returncode == 1
    assert "500" in result.stderr
    assert 'raise RuntimeError("the model fell over")' in result.stderr


def test_without_dev_500_bodies_hold_no_traceback(chutes, start_server):
    server = start_server("cli_basic.py:chute")
    result = chutes("invoke", "/crash", "--json", "{}", "--url", server.url)
    assert result.returncode == 1
    assert "raise RuntimeError" not in result.stderr


# Python writes __pycache__ unless PYTHONDONTWRITEBYTECODE is set; a timestamp .pyc trusts its source's
# mtime in whole seconds and size, so an edit of the same length within a second of the import was
# served stale after the reload in the first environment. Reload tests run in both.
BYTECODE_ENVS = {"bytecode": {"PYTHONDONTWRITEBYTECODE": None}, "no-bytecode": {"PYTHONDONTWRITEBYTECODE": "1"}}


@pytest.fixture(params=sorted(BYTECODE_ENVS))
def bytecode_env(request: pytest.FixtureRequest) -> dict[str, str | None]:
    return BYTECODE_ENVS[request.param]


def wait_for_version(server, expected: str, timeout: float = 20) -> None:
    """Waits until GET /version answers `expected`; fails with the last answer and the server's log."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = httpx.get(f"{server.url}/version", timeout=2).json()
        except (httpx.TransportError, ValueError):
            seen = None
        if seen == {"version": expected}:
            return
        time.sleep(0.1)
    raise AssertionError(f"expected version {expected!r}, last answer {seen!r}:\n{server.stderr}")


def edit_in_the_same_second(path, text: str) -> None:
    """Writes `text` to `path` and keeps its mtime: an edit that lands within the second of the
    last one, as a quick second save does, made certain rather than left to timing."""
    before = path.stat()
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_reload_picks_up_an_edited_file(start_server, fixture_copy, bytecode_env):
    source = fixture_copy("cli_reload.py")
    server = start_server(f"{source}:chute", "--reload", cwd=source.parent, env=bytecode_env)
    assert httpx.get(f"{server.url}/version").json() == {"version": "one"}
    source.write_text(source.read_text().replace('VERSION = "one"', 'VERSION = "two"'))
    wait_for_version(server, "two")
    # The same length, within the same second: only the content tells the versions apart.
    edit_in_the_same_second(source, source.read_text().replace('VERSION = "two"', 'VERSION = "six"'))
    wait_for_version(server, "six")


def test_the_last_of_two_quick_edits_is_served(start_server, fixture_copy, bytecode_env):
    # An editor that saves, then rewrites the file (format on save) a moment later.
    source = fixture_copy("cli_reload.py")
    original = source.read_text()
    server = start_server("cli_reload.py:chute", "--dev", cwd=source.parent, env=bytecode_env)
    source.write_text(original.replace('VERSION = "one"', 'VERSION = "two"'))
    time.sleep(0.05)
    source.write_text(original.replace('VERSION = "one"', 'VERSION = "six"'))
    wait_for_version(server, "six")
    # A second edit while the server restarts is served too.
    source.write_text(original.replace('VERSION = "one"', 'VERSION = "ten"'))
    time.sleep(0.3)
    source.write_text(original.replace('VERSION = "one"', 'VERSION = "end"'))
    wait_for_version(server, "end")
    time.sleep(1.5)  # and stays served: no later reload brings back an older version
    wait_for_version(server, "end", timeout=2)


def test_reload_picks_up_an_edited_sibling_module(start_server, fixture_copy, bytecode_env):
    source = fixture_copy("cli_reload.py")
    helper = source.parent / "cli_reload_version.py"
    helper.write_text('VERSION = "one"\n')
    source.write_text(source.read_text().replace('VERSION = "one"', "from cli_reload_version import VERSION"))
    server = start_server("cli_reload:chute", "--dev", cwd=source.parent, env=bytecode_env)
    wait_for_version(server, "one")
    helper.write_text('VERSION = "two"\n')
    wait_for_version(server, "two")


def test_reload_survives_a_broken_edit(start_server, fixture_copy, bytecode_env):
    source = fixture_copy("cli_reload.py")
    original = source.read_text()
    server = start_server("cli_reload:chute", "--reload", cwd=source.parent, env=bytecode_env)
    source.write_text(original + "\ndef broken(:\n")
    deadline = time.monotonic() + 20
    while "SyntaxError" not in server.stderr and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "SyntaxError" in server.stderr
    assert server.process.poll() is None
    source.write_text(original.replace('"one"', '"three"'))
    wait_for_version(server, "three")


def lifecycle_events(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_sigterm_runs_the_shutdown_hooks(start_server, tmp_path):
    log = tmp_path / "events.log"
    server = start_server("cli_lifecycle.py:chute", env={"CLI_LIFECYCLE_LOG": str(log)})
    assert lifecycle_events(log) == ["startup"]
    server.stop(signal.SIGTERM)
    assert lifecycle_events(log) == ["startup", "shutdown"]
    assert "Traceback" not in server.stderr


def test_ctrl_c_runs_the_shutdown_hooks_in_dev_mode(start_server, tmp_path):
    log = tmp_path / "events.log"
    server = start_server("cli_lifecycle.py:chute", "--dev", env={"CLI_LIFECYCLE_LOG": str(log)})
    assert httpx.get(f"{server.url}/ping-me").json() == {"dev": True, "log_requests": True}
    server.stop(signal.SIGINT)
    assert lifecycle_events(log) == ["startup", "shutdown"]
    assert "Traceback" not in server.stderr


def test_module_reference_is_imported_from_the_current_directory(start_server):
    server = start_server("cli_basic:chute", cwd=FIXTURES)
    assert httpx.post(f"{server.url}/echo", json={"text": "m"}).json() == {"text": "m", "times": 1}


def test_module_alone_means_its_chute_attribute(start_server):
    server = start_server("cli_basic", cwd=FIXTURES)
    assert httpx.get(f"{server.url}/hello").json() == {"message": "Hello, world!"}


def test_port_in_use_is_a_clear_error(chutes):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = chutes("run", "cli_basic.py:chute", "--port", str(port), cwd=FIXTURES)
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "already in use" in result.stderr
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_cords_lists_the_chute_as_json(chutes):
    result = chutes("cords", "cli_basic.py:chute", "--json", cwd=FIXTURES)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert listing["slug"] == "tester-cli-basic"
    by_name = {cord["name"]: cord for cord in listing["cords"]}
    assert by_name["echo"]["method"] == "POST" and by_name["echo"]["path"] == "/echo"
    assert by_name["echo"]["input"] == [
        {"name": "text", "type": "str", "required": True, "default": None},
        {"name": "times", "type": "int", "required": False, "default": 1},
    ]
    assert by_name["stream"]["stream"] is True
    assert by_name["image"]["output_content_type"] == "image/png"


def test_cords_prints_a_table(chutes):
    result = chutes("cords", "cli_basic.py:chute", cwd=FIXTURES, env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    for text in ("tester-cli-basic", "/echo", "/gated", "text: str", "times: int = 1"):
        assert text in result.stdout


def test_failing_startup_hook_stops_the_server_with_its_error(chutes):
    result = chutes("run", "cli_startup_fails.py:chute", "--port", "0", cwd=FIXTURES)
    assert result.returncode == 1
    assert "weights.bin is missing" in result.stderr
    assert "load_weights" in result.stderr
    assert "Error: the chute did not start" in result.stderr
    assert result.stderr.count("Traceback") == 1, result.stderr
    assert "serving at" not in result.stdout  # the banner waits until the server really serves


def test_ctrl_c_stops_a_plain_server_with_130_and_no_traceback(start_server, tmp_path):
    log = tmp_path / "events.log"
    server = start_server("cli_lifecycle.py:chute", env={"CLI_LIFECYCLE_LOG": str(log)})
    assert server.stop(signal.SIGINT) == 130
    assert lifecycle_events(log) == ["startup", "shutdown"]
    assert "Traceback" not in server.stderr


@pytest.mark.parametrize("mode", [[], ["--dev"]], ids=["plain", "dev"])
def test_pid_file_names_the_process_that_stops_just_this_server(start_server, tmp_path, mode):
    log, pid_file = tmp_path / "events.log", tmp_path / "run" / "chutes.pid"
    pid_file.parent.mkdir()
    server = start_server(
        "cli_lifecycle.py:chute", "--pid-file", str(pid_file), *mode, env={"CLI_LIFECYCLE_LOG": str(log)}
    )
    other = start_server("cli_basic.py:chute", "--pid-file", str(tmp_path / "other.pid"))
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_file.read_text() == f"{server.process.pid}\n"
    os.kill(int(pid_file.read_text()), signal.SIGTERM)
    server.process.wait(15)
    assert lifecycle_events(log) == ["startup", "shutdown"]
    assert not pid_file.exists()
    assert httpx.get(f"{other.url}/hello").status_code == 200  # the other server still serves


def test_pid_file_in_a_missing_directory_is_a_usage_error(chutes, tmp_path):
    result = chutes("run", "cli_basic.py:chute", "--pid-file", str(tmp_path / "nowhere" / "p.pid"), cwd=FIXTURES)
    assert result.returncode == 2
    assert "--pid-file: directory" in result.stderr and "does not exist" in result.stderr


def test_dev_server_answers_at_once_while_the_module_is_broken(chutes, start_server, fixture_copy):
    source = fixture_copy("cli_reload.py")
    original = source.read_text()
    source.write_text(original + "\ndef broken(:\n")
    server = start_server("cli_reload.py:chute", "--dev", cwd=source.parent, wait=False)
    deadline = time.monotonic() + 20
    answer = None
    while answer is None and time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{server.url}/version", timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    assert answer is not None, server.stderr
    assert answer.status_code == 503
    assert "SyntaxError" in answer.json()["detail"] and "def broken(:" in answer.json()["traceback"]
    result = chutes("invoke", "/version", "--url", server.url, "--timeout", "10")
    assert result.returncode == 1
    assert "answered 503" in result.stderr
    assert "the chute's module does not load" in result.stderr
    assert "SyntaxError: invalid syntax" in result.stderr
    assert "busy" not in result.stderr
    source.write_text(original)
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.url}/version", timeout=2).json() == {"version": "one"}:
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"the fixed file was not served:\n{server.stderr}")


def test_dev_mode_shows_an_import_error_and_waits_for_the_fix(start_server, fixture_copy, bytecode_env):
    source = fixture_copy("cli_reload.py")
    original = source.read_text()
    # The broken line has the same length as the fixed one: only the content tells them apart.
    source.write_text(original.replace('VERSION = "one"', "VERSION = 1 / 0"))
    server = start_server("cli_reload.py:chute", "--dev", cwd=source.parent, wait=False, env=bytecode_env)
    deadline = time.monotonic() + 20
    while "ZeroDivisionError" not in server.stderr and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Error: importing module 'cli_reload'" in server.stderr
    assert server.process.poll() is None
    edit_in_the_same_second(source, original)
    wait_for_version(server, "one")


def test_dev_server_answers_at_once_when_a_startup_hook_fails(chutes, start_server, fixture_copy):
    source = fixture_copy("cli_startup_fails.py")
    server = start_server("cli_startup_fails.py:chute", "--dev", cwd=source.parent, wait=False)
    deadline = time.monotonic() + 20
    while "Waiting for a change" not in server.stderr and time.monotonic() < deadline:
        time.sleep(0.1)
    result = chutes("invoke", "/never", "--url", server.url, "--timeout", "10")
    assert result.returncode == 1
    assert "answered 503" in result.stderr
    assert "the chute did not start: on_startup hook 'load_weights'" in result.stderr
    assert "FileNotFoundError: weights.bin is missing" in result.stderr
    assert server.stderr.count("Traceback") == 1
    assert "serving at" not in server.stdout
    source.write_text(source.read_text().replace('raise FileNotFoundError("weights.bin is missing")', "pass"))
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.url}/never", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the fixed file was not served:\n{server.stderr}")
