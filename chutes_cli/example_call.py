"""A `chutes invoke` command that works for a cord, with example input built from its schema."""

from __future__ import annotations

import inspect
import json
import shlex
from typing import Any

BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
MAX_DEPTH = 4


def example_command(cord: Any, target: list[str]) -> str:
    """Takes a cord and the options that reach its chute (e.g. --chute U/N --host URL), and returns the command."""
    words = ["chutes", "invoke", cord.path, *target]
    binding = cord.binding
    input_args: list[str] = []
    if cord.passthrough or binding is None:
        pass
    elif binding.kind == "raw":
        input_args = ["--data", "@FILE"]
    elif binding.kind == "fastapi":
        input_args = form_arguments(cord.fn)
    elif binding.from_query:
        schema = binding.model.model_json_schema()
        for name, value in example_object(schema, schema, required_only=True).items():
            for item in value if isinstance(value, list) else [value]:
                input_args += ["-q", f"{name}={item if isinstance(item, str) else json.dumps(item)}"]
    elif binding.model is not None:
        schema = binding.model.model_json_schema()
        input_args = ["--json", json.dumps(example_object(schema, schema), ensure_ascii=False)]
    has_body = any(arg in ("--json", "--data", "-F") for arg in input_args)
    if cord.method not in BODYLESS_METHODS and not has_body:
        input_args = ["--json", "{}"]
        has_body = True
    inferred = "POST" if has_body else "GET"
    if cord.method != inferred:
        words += ["--method", cord.method]
    return shlex.join(words + input_args)


def example_object(schema: dict, root: dict, *, required_only: bool = False, depth: int = 0) -> dict[str, Any]:
    """Returns an example object: its required fields, or every field (with defaults) when none is required."""
    properties = schema.get("properties") or {}
    required = [name for name in schema.get("required", []) if name in properties]
    names = required if required or required_only else list(properties)
    return {name: example_value(properties[name], root, depth + 1) for name in names}


def example_value(schema: dict, root: dict, depth: int) -> Any:
    """Returns a value that fits a JSON schema: its example, default, first choice, or one of its type."""
    if "$ref" in schema:
        schema = resolve_ref(schema["$ref"], root)
    for key in ("examples", "enum"):
        if schema.get(key):
            return schema[key][0]
    for key in ("example", "const", "default"):
        if key in schema and schema[key] is not None:
            return schema[key]
    for key in ("anyOf", "oneOf", "allOf"):
        choices = [c for c in schema.get(key, []) if c.get("type") != "null"]
        if choices:
            return example_value(choices[0], root, depth)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return example_object(schema, root, depth=depth) if depth < MAX_DEPTH else {}
    if kind == "array":
        item = example_value(schema.get("items") or {}, root, depth + 1) if depth < MAX_DEPTH else None
        return [item] * max(1, schema.get("minItems", 1)) if item is not None else []
    if kind in ("integer", "number"):
        value = schema["minimum"] if "minimum" in schema else schema.get("exclusiveMinimum", 0) + 1
        return min(value, schema.get("maximum", value))
    if kind == "boolean":
        return True
    if kind == "string":
        return "x" * schema["minLength"] if schema.get("minLength", 0) > 4 else "text"
    return None


def resolve_ref(ref: str, root: dict) -> dict:
    """Returns the schema a local `#/$defs/Name` reference points at."""
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node


def form_arguments(fn: Any) -> list[str]:
    """Returns -F options for a cord's File and Form parameters (FastAPI binds them)."""
    arguments: list[str] = []
    try:
        parameters = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]
    except (NameError, TypeError, ValueError):
        return arguments
    for param in parameters:
        default_kind = type(param.default).__name__
        annotation = getattr(param.annotation, "__name__", "")
        if default_kind == "File" or annotation == "UploadFile":
            arguments += ["-F", f"{param.name}=@FILE"]
        elif default_kind == "Form":
            arguments += ["-F", f"{param.name}=text"]
    return arguments
