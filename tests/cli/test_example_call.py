"""The `chutes invoke` command deploy suggests: right method, example input from the cord's schema."""

from __future__ import annotations

import pytest

from chutes_cli.example_call import example_command
from tests.fixtures.chutes import inputs
from tests.fixtures.chutes.cli_basic import chute as basic


def cord_named(chute, name: str):
    return next(cord for cord in chute.cords if cord.name == name)


@pytest.mark.parametrize(
    ("chute", "name", "expected"),
    [
        (basic, "echo", 'chutes invoke /echo --chute u/n --json \'{"text": "text"}\''),
        (basic, "hello", "chutes invoke /hello --chute u/n"),
        (basic, "teapot", 'chutes invoke /teapot --chute u/n --json \'{"flavour": "earl grey"}\''),
        (basic, "upload", "chutes invoke /upload --chute u/n -F file=@FILE"),
        (basic, "crash", "chutes invoke /crash --chute u/n --json '{}'"),
        (inputs.chute, "raw", "chutes invoke /raw --chute u/n --data @FILE"),
        (inputs.chute, "search", "chutes invoke /search --chute u/n -q q=text"),
        (inputs.chute, "delete_items", "chutes invoke /items --chute u/n --method DELETE -q ids=1"),
        # a lone dict parameter is the whole body (FastAPI's rule)
        (inputs.chute, "put_config", "chutes invoke /put_config --chute u/n --method PUT --json '{}'"),
    ],
)
def test_example_command(chute, name: str, expected: str) -> None:
    assert example_command(cord_named(chute, name), ["--chute", "u/n"]) == expected
