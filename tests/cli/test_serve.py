"""`python -m chutes.serve`: the entrypoint of images and host instances, without the CLI."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx

from tests.cli.conftest import FIXTURES, Server, free_port, wait_until_ready


def start_serve(ref: str, tmp_path, env: dict[str, str]) -> Server:
    port = free_port()
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "chutes.serve", ref, "--host", "127.0.0.1", "--port", str(port)],
            cwd=FIXTURES,
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    return Server(process, f"http://127.0.0.1:{port}", port, out, err)


def test_serves_the_chute_and_runs_shutdown_hooks_on_sigterm(tmp_path, cli_env):
    log = tmp_path / "events.log"
    server = start_serve("cli_lifecycle:chute", tmp_path, {**cli_env, "CLI_LIFECYCLE_LOG": str(log)})
    try:
        wait_until_ready(server)
        assert httpx.get(f"{server.url}/ping-me").json() == {"dev": False, "log_requests": False}
    finally:
        server.stop(signal.SIGTERM)
    assert log.read_text().split() == ["startup", "shutdown"]
    assert "chutes_cli" not in server.stderr


def test_bad_reference_is_one_error_line(cli_env):
    result = subprocess.run(
        [sys.executable, "-m", "chutes.serve", "cli_not_chute:settings", "--port", str(free_port())],
        cwd=FIXTURES,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: cli_not_chute:settings is a dict, not a Chute")
    assert "Traceback" not in result.stderr


def test_serve_does_not_import_the_cli(cli_env):
    code = (
        "import sys, runpy\n"
        "sys.argv = ['chutes.serve', 'cli_not_chute:settings']\n"
        "try:\n    runpy.run_module('chutes.serve', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('chutes_cli', 'typer', 'rich', 'docker', 'jinja2') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=FIXTURES, env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_ctrl_c_stops_it_with_130_without_a_traceback(tmp_path, cli_env):
    log = tmp_path / "events.log"
    server = start_serve("cli_lifecycle:chute", tmp_path, {**cli_env, "CLI_LIFECYCLE_LOG": str(log)})
    try:
        wait_until_ready(server)
    finally:
        code = server.stop(signal.SIGINT)
    assert code == 130
    assert log.read_text().split() == ["startup", "shutdown"]
    assert "Traceback" not in server.stderr and "KeyboardInterrupt" not in server.stderr


def test_a_failing_startup_hook_prints_its_traceback_once(tmp_path, cli_env):
    server = start_serve("cli_startup_fails:chute", tmp_path, cli_env)
    assert server.process.wait(30) == 3
    assert server.stderr.count("Traceback") == 1, server.stderr
    assert "weights.bin is missing" in server.stderr
