"""`chutes --help`, `--version` and each command's help; the help path stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chutes import __version__

MY_COMMANDS = ["run", "invoke", "init", "cords", "config"]
HEAVY_MODULES = ("uvicorn", "docker", "jinja2", "httpx", "chutes.chute", "fastapi", "pydantic")


def test_help_lists_the_commands(chutes):
    result = chutes("--help")
    assert result.returncode == 0
    for command in MY_COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", MY_COMMANDS)
def test_each_command_has_help_with_an_example(chutes, command):
    result = chutes(command, "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout


def test_config_subcommands_have_examples(chutes):
    for sub in ("show", "set"):
        assert "Example: chutes config" in chutes("config", sub, "--help", env={"COLUMNS": "200"}).stdout


def test_version(chutes):
    result = chutes("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"chutes {__version__}"


@pytest.mark.parametrize(
    "argv", [["--help"], ["invoke", "--help"], ["run", "--help"], ["invoke", "/x", "--url", "http://127.0.0.1:9"]]
)
def test_help_imports_no_heavy_module(argv):
    code = (
        "import sys\n"
        f"sys.argv = ['chutes', *{argv!r}]\n"
        "from chutes_cli.main import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "HEAVY=", result.stderr
