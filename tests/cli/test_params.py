"""chutes_cli.params: simple parameters parse as Typer parses them, without pydantic."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from typer.testing import CliRunner

from chutes_cli import params

params.install()


class Colour(StrEnum):
    red = "red"
    blue = "blue"


def make_app(seen: dict) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def command(
        name: str,
        count: Annotated[int, typer.Option(min=1, max=5)] = 1,
        ratio: float = 0.5,
        colour: Colour = Colour.red,
        where: Path = Path("."),
        tag: Annotated[list[str] | None, typer.Option()] = None,
        loud: bool = False,
        when: datetime | None = None,
    ) -> None:
        seen.update(name=name, count=count, ratio=ratio, colour=colour, where=where, tag=tag, loud=loud, when=when)

    return app


def invoke(*args: str):
    seen: dict = {}
    result = CliRunner().invoke(make_app(seen), list(args))
    return result, seen


def test_values_are_coerced_to_their_types():
    result, seen = invoke(
        "ada",
        "--count",
        "3",
        "--ratio",
        "2",
        "--colour",
        "blue",
        "--where",
        "x/y",
        "--tag",
        "a",
        "--tag",
        "b",
        "--loud",
    )
    assert result.exit_code == 0, result.output
    assert seen["count"] == 3 and seen["ratio"] == 2.0 and isinstance(seen["ratio"], float)
    assert seen["colour"] is Colour.blue
    assert seen["where"] == Path("x/y")
    assert seen["tag"] == ["a", "b"]
    assert seen["loud"] is True


def test_defaults_keep_their_types():
    result, seen = invoke("ada")
    assert result.exit_code == 0, result.output
    assert seen["count"] == 1 and seen["colour"] is Colour.red and seen["where"] == Path(".") and seen["tag"] is None


def test_bad_values_are_usage_errors():
    for args, message in (
        (["ada", "--count", "9"], "9 is not in the range 1<=x<=5"),
        (["ada", "--count", "many"], "'many' is not a valid integer"),
        (["ada", "--colour", "green"], "'green' is not one of 'red', 'blue'"),
    ):
        result, _ = invoke(*args)
        assert result.exit_code == 2
        assert message in result.output


def test_other_types_still_go_through_typer():
    result, seen = invoke("ada", "--when", "2026-01-02T03:04:05")
    assert result.exit_code == 0, result.output
    assert seen["when"] == datetime(2026, 1, 2, 3, 4, 5)
