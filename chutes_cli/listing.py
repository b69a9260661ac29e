"""A chute's cords as plain data, for `chutes cords` (table or JSON)."""

from __future__ import annotations

import inspect
import os
from typing import Any


def describe_cords(chute: Any) -> list[dict[str, Any]]:
    """Returns one JSON-able dict per cord, in declaration order."""
    return [describe_cord(cord) for cord in chute.cords]


def describe_jobs(chute: Any) -> list[dict[str, Any]]:
    """Returns one JSON-able dict per job, in declaration order."""
    return [
        {
            "name": job.name,
            "timeout": job.timeout,
            "upload": job.upload,
            "ports": [p.model_dump() for p in job.ports],
            "input": describe_job_inputs(job),
            "source": f"{os.path.basename(job.filename)}:{job.lineno}",
        }
        for job in getattr(chute, "jobs", {}).values()
    ]


def describe_job_inputs(job: Any) -> list[dict[str, Any]]:
    """Lists a job's JSON arguments: its model's fields, and `**name` when it takes any other key."""
    binding = job.binding
    if binding.kind == "body":
        return [{"name": binding.param, "type": "whole body", "required": True, "default": None}]
    inputs = [
        {
            "name": name,
            "type": type_name(field.annotation),
            "required": field.is_required(),
            "default": None if field.is_required() else json_safe(field.get_default(call_default_factory=False)),
        }
        for name, field in binding.model.model_fields.items()
    ]
    if binding.model.model_config.get("extra") == "allow":
        try:
            parameters = inspect.signature(job.fn).parameters.values()
        except (TypeError, ValueError):
            parameters = []
        name = next((p.name for p in parameters if p.kind == p.VAR_KEYWORD), "kwargs")
        inputs.append({"name": f"**{name}", "type": "any other keys", "required": True, "default": None})
    return inputs


def describe_cord(cord: Any) -> dict[str, Any]:
    """Returns a cord's route, streaming and passthrough settings and input fields."""
    return {
        "name": cord.name,
        "method": cord.method,
        "path": cord.path,
        "stream": cord.stream,
        "passthrough": cord.passthrough,
        "passthrough_target": (
            f"127.0.0.1:{cord.passthrough_port}{cord.passthrough_path or cord.path}" if cord.passthrough else None
        ),
        "output_content_type": cord.output_content_type,
        "input": describe_inputs(cord),
        "source": f"{os.path.basename(cord.filename)}:{cord.lineno}",
    }


def describe_inputs(cord: Any) -> list[dict[str, Any]]:
    """Lists the inputs a cord reads: the fields of its input model, or its raw/FastAPI parameters."""
    binding = getattr(cord, "binding", None)
    if binding is not None and binding.kind == "raw":
        return [{"name": binding.param, "type": "bytes (raw body)", "required": True, "default": None}]
    if cord.input_model is not None:
        return [
            {
                "name": name,
                "type": type_name(field.annotation),
                "required": field.is_required(),
                "default": None if field.is_required() else json_safe(field.get_default(call_default_factory=False)),
            }
            for name, field in cord.input_model.model_fields.items()
        ]
    return describe_parameters(cord.fn)


def describe_parameters(fn: Any) -> list[dict[str, Any]]:
    """Lists a function's parameters after `self`, skipping the Request object."""
    try:
        parameters = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]
    except (NameError, TypeError, ValueError):
        return []
    inputs = []
    for param in parameters:
        annotation = param.annotation
        if getattr(annotation, "__name__", "") in ("Request", "HTTPConnection"):
            continue
        default = param.default
        required = (
            default is inspect.Parameter.empty
            or type(default).__name__ in ("File", "Form")
            and (getattr(default, "default", None) is Ellipsis)
        )
        inputs.append(
            {
                "name": param.name,
                "type": type_name(annotation) if annotation is not inspect.Parameter.empty else "any",
                "required": bool(required),
                "default": None,
            }
        )
    return inputs


def type_name(annotation: Any) -> str:
    """Returns a short readable name for a type annotation."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def json_safe(value: Any) -> Any:
    """Returns `value` if JSON can hold it, else its repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    return repr(value)


def format_inputs(inputs: list[dict[str, Any]]) -> str:
    """Renders inputs for a table cell: `name: type`, with `= default` or `?` for optional ones."""
    parts = []
    for item in inputs:
        text = f"{item['name']}: {item['type']}"
        if not item["required"]:
            text += f" = {item['default']!r}" if item["default"] is not None else "?"
        parts.append(text)
    return ", ".join(parts) or "-"
