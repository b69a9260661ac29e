"""Bad references through the real command: one clear message, a non-zero exit, no CLI traceback."""

from __future__ import annotations

import pytest

from tests.cli.conftest import FIXTURES

COMMANDS = [("run", "--port", "1"), ("cords",)]


def assert_clean_failure(result, *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("Error: ")
    for fragment in fragments:
        assert fragment in result.stderr
    for machinery in ("chutes_cli", "typer", "click", "importlib", "loader.py"):
        assert machinery not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_file(chutes, command):
    result = chutes(command[0], "no_such_dir/my_chute.py:chute", *command[1:], cwd=FIXTURES)
    assert_clean_failure(result, "no_such_dir/my_chute.py", "does not exist", str(FIXTURES))
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_module(chutes, command, tmp_path):
    result = chutes(command[0], "no_such_module:chute", *command[1:], cwd=tmp_path)
    assert_clean_failure(result, "cannot find module 'no_such_module'", str(tmp_path), "no_such_module.py")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_module_that_raises_shows_the_users_traceback(chutes, command):
    result = chutes(command[0], "cli_import_error.py:chute", *command[1:], cwd=FIXTURES)
    assert_clean_failure(result, "ZeroDivisionError: division by zero", "raised ZeroDivisionError")
    assert "WEIGHTS = load_weights()" in result.stderr
    assert 'return {"weights": 1 / 0}' in result.stderr
    assert result.stderr.count('File "') == 2


def test_syntax_error_points_at_the_line(chutes, tmp_path):
    (tmp_path / "broken.py").write_text("from chutes.chute import Chute\n\ndef oops(:\n    pass\n")
    result = chutes("cords", "broken:chute", cwd=tmp_path)
    assert_clean_failure(result, "SyntaxError", "broken.py", "line 3")


@pytest.mark.parametrize("command", COMMANDS)
def test_attribute_that_is_not_a_chute(chutes, command):
    result = chutes(command[0], "cli_not_chute.py:settings", *command[1:], cwd=FIXTURES)
    assert_clean_failure(result, "is a dict, not a Chute", "chute, other_chute")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_attribute_lists_the_chutes(chutes, command):
    result = chutes(command[0], "cli_not_chute:chuet", *command[1:], cwd=FIXTURES)
    assert_clean_failure(result, "has no attribute 'chuet'", "chute, other_chute")


def test_function_attribute_says_its_type(chutes):
    result = chutes("cords", "cli_not_chute.py:helper", cwd=FIXTURES)
    assert_clean_failure(result, "is a function, not a Chute")


def test_invalid_attribute_name(chutes):
    result = chutes("cords", "cli_basic.py:not-a-name", cwd=FIXTURES)
    assert_clean_failure(result, "must be a Python name")


def test_unknown_option_is_a_usage_error(chutes):
    result = chutes("run", "cli_basic.py:chute", "--no-such-option", cwd=FIXTURES)
    assert result.returncode == 2
    assert "No such option" in result.stderr
    assert "Traceback" not in result.stderr


def test_dev_mode_checks_the_reference_before_starting(chutes):
    result = chutes("run", "no_such_dir/my_chute.py:chute", "--dev", cwd=FIXTURES)
    assert_clean_failure(result, "does not exist")
    module = chutes("run", "no_such_module:chute", "--reload", cwd=FIXTURES)
    assert_clean_failure(module, "cannot find module 'no_such_module'")
