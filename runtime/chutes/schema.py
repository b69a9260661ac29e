"""JSON-schema dicts given where a pydantic model is expected, as the Chutes platform's SDK allows,
and validating JSON data against them (with python-jsonschema, imported only when a schema is used)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def check_json_schema(schema: dict, what: str, fail: Callable[[str], Exception]) -> dict[str, Any]:
    """Takes a JSON-schema dict, and returns a copy of it (or raises naming `what`).

    The schema documents the cord (in /openapi.json and the manifest); the cord's single parameter
    then takes the whole JSON body, as it does on the platform.
    """
    try:
        copy = json.loads(json.dumps(schema))
    except (TypeError, ValueError) as exc:
        raise fail(f"{what} must be JSON data (a JSON-schema dict): {exc}") from None
    kind = copy.get("type")
    if kind is not None and not isinstance(kind, str | list):
        raise fail(f"{what} has a 'type' of {kind!r}; JSON schema wants a name like 'object'")
    problem = schema_problem(copy)
    if problem is not None:
        raise fail(f"{what} is not a valid JSON schema: {problem}")
    return copy


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Returns what makes `schema` an invalid JSON schema (Draft 2020-12, unless its $schema says another), or None."""
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema, default=default_validator()).check_schema(schema)
    except SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path)
        return f"{exc.message}" + (f" (at '{at}')" if at else "")
    return None


def default_validator() -> type:
    from jsonschema import Draft202012Validator

    return Draft202012Validator


def schema_validator(schema: dict[str, Any]) -> Any:
    """Takes a checked JSON schema, and returns a validator for it (its $schema, else Draft 2020-12)."""
    from jsonschema.validators import validator_for

    return validator_for(schema, default=default_validator())(schema)


def schema_errors(validator: Any, value: Any) -> list[dict[str, Any]]:
    """Takes a validator and JSON data, and returns its errors shaped like pydantic's (`type`, `loc`, `msg`,
    `input`; `type` is the JSON-schema keyword that failed), in order of where they are; [] when it is valid."""
    errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    return [
        {"type": str(e.validator), "loc": tuple(e.absolute_path), "msg": describe(e), "input": e.instance}
        for e in errors
    ]


def check_against_schema(validator: Any, value: Any, title: str) -> None:
    """Raises pydantic's ValidationError (so it is answered like any other invalid input) if `value` does
    not match the validator's schema."""
    errors = schema_errors(validator, value)
    if errors:
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails, PydanticCustomError

        details: list[InitErrorDetails] = [
            {"type": PydanticCustomError(e["type"], e["msg"]), "loc": e["loc"], "input": e["input"]} for e in errors
        ]
        raise ValidationError.from_exception_data(title, details)


def describe(error: Any) -> str:
    """Returns jsonschema's message, with the reason of each failed alternative of an anyOf/oneOf."""
    reasons = sorted({sub.message for sub in error.context or ()})
    return f"{error.message} ({'; '.join(reasons)})" if reasons else error.message
