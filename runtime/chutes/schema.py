"""JSON-schema dicts given where a pydantic model is expected, as the Chutes platform's SDK allows."""

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
    return copy
