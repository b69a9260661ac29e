"""A cord: one decorated function analysed once into a frozen, ready-to-serve spec."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypedDict

from pydantic import BaseModel

from chutes.binding import Binding, analyse_parameters, build_body_model, is_model, model_binding
from chutes.exceptions import CordDefinitionError, InvalidPath
from chutes.schema import check_json_schema, schema_validator

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
RESERVED_PATHS = frozenset({"/_ping", "/_ready", "/_metrics", "/openapi.json", "/docs"})
PATH_PATTERN = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*")
MEDIA_TYPE_PATTERN = re.compile(r"[\w.+-]+/[\w.+-]+(\s*;.*)?")
# the Chutes platform's SDK forwards a passthrough cord to this port when none is given
DEFAULT_PASSTHROUGH_PORT = 8000


@dataclass(frozen=True, slots=True, repr=False)
class Cord:
    """An HTTP endpoint of a chute: where it is served and how it reads and answers requests."""

    name: str
    path: str
    method: str
    fn: Callable[..., Any]
    binding: Binding | None
    stream: bool = False
    passthrough: bool = False
    passthrough_path: str | None = None
    passthrough_port: int | None = None
    output_content_type: str | None = None
    input_model: type[BaseModel] | None = None
    minimal_input_model: type[BaseModel] | None = None
    is_async: bool = True
    filename: str = ""
    lineno: int = 0
    alias: str | None = None
    input_json_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None

    def __repr__(self) -> str:
        extra = ", stream=True" if self.stream else ""
        if self.passthrough:
            extra += f", passthrough=127.0.0.1:{self.passthrough_port}{self.passthrough_path}"
        return f"Cord(path={self.path!r}, method={self.method!r}{extra})"

    @property
    def where(self) -> str:
        return f"cord '{self.name}' ({os.path.basename(self.filename)}:{self.lineno})"

    @property
    def input_fields(self) -> list[str]:
        """Returns the top-level keys the cord reads, for listings."""
        if self.binding is not None and self.binding.kind == "raw":
            return [f"{self.binding.param} (raw body)"]
        if self.binding is not None and self.binding.kind == "body":
            return [f"{self.binding.param} (whole body)"]
        return list(self.input_model.model_fields) if self.input_model else []


class CordOptions(TypedDict, total=False):
    """The keywords of `@chute.cord(...)`, for type checkers: `define_cord` holds their defaults and checks."""

    public_api_path: str | None
    path: str | None
    method: str | None
    public_api_method: str | None
    input_schema: type[BaseModel] | dict[str, Any] | None
    minimal_input_schema: type[BaseModel] | dict[str, Any] | None
    output_content_type: str | None
    stream: bool
    passthrough: bool
    passthrough_path: str | None
    passthrough_port: int | None
    output_schema: type[BaseModel] | dict[str, Any] | None
    pass_chute: bool
    provision_timeout: int | None
    sglang_passthrough: bool


def define_cord(
    fn: Callable[..., Any],
    *,
    public_api_path: str | None = None,
    path: str | None = None,
    method: str | None = None,
    public_api_method: str | None = None,
    input_schema: type[BaseModel] | dict[str, Any] | None = None,
    minimal_input_schema: type[BaseModel] | dict[str, Any] | None = None,
    output_content_type: str | None = None,
    stream: bool = False,
    passthrough: bool = False,
    passthrough_path: str | None = None,
    passthrough_port: int | None = None,
    output_schema: type[BaseModel] | dict[str, Any] | None = None,
    pass_chute: bool = True,
    provision_timeout: int | None = None,
    sglang_passthrough: bool = False,
) -> Cord:
    """Takes a function and the decorator's arguments, and returns its Cord (or raises CordDefinitionError)."""
    if not callable(fn):
        raise CordDefinitionError(f"@chute.cord decorates a function, not {type(fn).__name__}")
    code = getattr(fn, "__code__", None)
    filename = code.co_filename if code else "<unknown>"
    lineno = code.co_firstlineno if code else 0
    name = getattr(fn, "__name__", repr(fn))
    where = f"cord '{name}' ({os.path.basename(filename)}:{lineno})"

    def fail(message: str) -> CordDefinitionError:
        return CordDefinitionError(f"{where}: {message}")

    # pass_chute, provision_timeout and sglang_passthrough steer the platform's client and
    # scheduler; here every cord gets the chute and is ready when the chute is
    route, alias = check_path(public_api_path, path, name, fail)
    verb = check_method(method, public_api_method, fail)
    json_schema = None
    if isinstance(input_schema, dict):
        json_schema = check_json_schema(input_schema, "input_schema", fail)
        input_schema = None
    if isinstance(minimal_input_schema, dict):
        check_json_schema(minimal_input_schema, "minimal_input_schema", fail)
        minimal_input_schema = None
    if input_schema is not None and not is_model(input_schema):
        raise fail(f"input_schema must be a pydantic BaseModel class or a JSON-schema dict, not {input_schema!r}")
    out_schema = check_output_schema(output_schema, fail)
    if minimal_input_schema is not None:
        check_minimal_schema(input_schema, minimal_input_schema, fail)  # without input_schema: after the binding
    if output_content_type is not None and not MEDIA_TYPE_PATTERN.fullmatch(output_content_type):
        raise fail(f"output_content_type {output_content_type!r} is not a media type like 'image/jpeg'")

    parameters = read_parameters(fn, fail)
    is_async_gen = inspect.isasyncgenfunction(fn)
    is_gen = is_async_gen or inspect.isgeneratorfunction(fn)
    if passthrough:
        port = check_passthrough(passthrough_port, fail)
        target = normalise_path(passthrough_path) if passthrough_path else route
        if not PATH_PATTERN.fullmatch(target):
            raise InvalidPath(f"{where}: passthrough_path {target!r} must be a URL path like '/v1/models'")
        from_query = verb in ("GET", "DELETE")
        binding = model_binding("model", input_schema, None, None, from_query) if input_schema else None
        if json_schema is not None and not from_query:  # read the body to check it, then forward it as it came
            body_model = build_body_model(Any, model_name_for(name), fail)
            binding = Binding("body", body_model, checker=schema_validator(json_schema))
        return Cord(
            name, route, verb, fn, binding, stream, True, target, port, output_content_type,
            input_schema, minimal_input_schema, True, filename, lineno, alias, json_schema, out_schema,
        )  # fmt: skip
    if stream and not is_gen and not may_return_response(fn):
        raise fail(
            "stream=True needs a generator function (use 'yield' to send each item) "
            "or one that returns a StreamingResponse"
        )
    if is_gen and not stream:
        raise fail("the function yields, so it streams; add stream=True to the decorator")
    binding = analyse_parameters(
        parameters,
        method=verb,
        input_schema=input_schema,
        model_name=model_name_for(name),
        fail=fail,
        whole_body=json_schema is not None,
    )
    if json_schema is not None and binding.kind in ("body", "fields", "model"):
        binding = replace(binding, checker=schema_validator(json_schema))
    if minimal_input_schema is not None and input_schema is None and binding.kind in ("fields", "model"):
        # as in the SDK, the full input is what the function's type hints say
        check_minimal_schema(binding.model, minimal_input_schema, fail, full_name="the function's parameters")
    is_async = is_async_gen or inspect.iscoroutinefunction(fn)
    return Cord(
        name, route, verb, fn, binding, stream, False, None, None, output_content_type,
        binding.model, minimal_input_schema, is_async, filename, lineno, alias, json_schema, out_schema,
    )  # fmt: skip


def may_return_response(fn: Callable) -> bool:
    """Returns whether a function's return annotation is a Response (a StreamingResponse, as the
    platform's streaming guide teaches for stream=True) or absent, so it may return one."""
    from starlette.responses import Response

    try:
        annotation = inspect.signature(fn, eval_str=True).return_annotation
    except (NameError, TypeError, ValueError):
        return True
    if annotation is inspect.Signature.empty:
        return True
    return isinstance(annotation, type) and issubclass(annotation, Response)


def is_generator(fn: Callable) -> bool:
    return inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn)


def check_path(public_api_path: str | None, path: str | None, name: str, fail: Callable) -> tuple[str, str | None]:
    """Returns the route (public_api_path, else path, else /name) and the other path when both are given.

    As in the SDK, `path` names the cord's own route and `public_api_path` the one clients use; a
    chute here serves the cord at both.
    """
    route = check_one_path(public_api_path or path or f"/{name}", fail)
    alias = None
    if public_api_path and path:
        alias = check_one_path(path, fail)
        if alias == route:
            alias = None
    return route, alias


def normalise_path(path: Any) -> Any:
    """Adds the leading '/' the SDK lets users leave out ('generate' is '/generate')."""
    if isinstance(path, str) and path and not path.startswith("/") and PATH_PATTERN.fullmatch("/" + path):
        return "/" + path
    return path


def check_one_path(path: Any, fail: Callable) -> str:
    route = normalise_path(path)
    if not isinstance(route, str) or not PATH_PATTERN.fullmatch(route):
        raise InvalidPath(
            str(
                fail(
                    f"path {route!r} must start with '/' and hold only URL path characters "
                    "(letters, digits, '-', '_', '.', '~', '/'); no spaces, '?' or '#'"
                )
            )
        )
    if route in RESERVED_PATHS:
        raise InvalidPath(str(fail(f"path {route!r} is a built-in route of every chute; choose another path")))
    return route


def check_output_schema(schema: Any, fail: Callable) -> dict[str, Any] | None:
    if schema is None:
        return None
    if is_model(schema):
        return schema.model_json_schema()
    if isinstance(schema, dict):
        return check_json_schema(schema, "output_schema", fail)
    raise fail(f"output_schema must be a pydantic BaseModel class or a JSON-schema dict, not {schema!r}")


def check_method(method: str | None, public_api_method: str | None, fail: Callable) -> str:
    if method and public_api_method and method.upper() != public_api_method.upper():
        raise fail(f"method={method!r} and public_api_method={public_api_method!r} disagree; give one")
    verb = (method or public_api_method or "POST").upper()
    if verb not in METHODS:
        raise fail(f"method {verb!r} is not one of {', '.join(sorted(METHODS))}")
    return verb


def check_minimal_schema(
    full: type[BaseModel] | None, minimal: type[BaseModel], fail: Callable, *, full_name: str | None = None
) -> None:
    """Refuses a minimal schema that requires a field the full input does not have (None: checked later)."""
    if not is_model(minimal):
        raise fail(f"minimal_input_schema must be a pydantic BaseModel class, not {minimal!r}")
    if full is None:
        return
    required = {n for n, f in minimal.model_fields.items() if f.is_required()}
    missing = sorted(required - set(full.model_fields))
    if missing:
        named = full_name or f"input_schema {full.__name__}"
        raise fail(
            f"minimal_input_schema {minimal.__name__} requires {missing}, which "
            f"{named} lacks; every minimal field must be a field of the full schema"
        )


def check_passthrough(port: Any, fail: Callable) -> int:
    if port is None:
        return DEFAULT_PASSTHROUGH_PORT
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise fail(f"passthrough_port must be a port number from 1 to 65535, not {port!r}")
    return port


def read_parameters(fn: Callable, fail: Callable) -> list[inspect.Parameter]:
    """Takes a cord function, and returns its parameters after `self`."""
    try:
        signature = inspect.signature(fn, eval_str=True)
    except NameError as exc:
        raise fail(f"an annotation cannot be resolved: {exc}; import the name in the module") from exc
    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise fail("the function must take 'self' (the chute) as its first parameter")
    return parameters[1:]


def model_name_for(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_") if part) + "Input"
