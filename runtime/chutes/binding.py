"""How a cord's parameters are filled from a request, decided once at decoration time."""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, RootModel, ValidationError, create_model
from pydantic_core import from_json
from starlette.background import BackgroundTasks
from starlette.datastructures import UploadFile
from starlette.requests import HTTPConnection
from starlette.responses import Response

QUERY_METHODS = frozenset({"GET", "DELETE", "HEAD"})
STARLETTE_TYPES = (UploadFile, BackgroundTasks, Response)


@dataclass(frozen=True, slots=True)
class Binding:
    """What a cord reads from a request and how it passes it to the function.

    kind is one of:
      "fields"  each parameter is a key of a JSON object body (query string for GET/DELETE)
      "model"   one pydantic model parameter (or `input_schema`) takes the whole object
      "body"    one parameter typed `dict`, `list` or `Any` takes the whole JSON body (FastAPI's rule);
                an object whose only key is the parameter's name still binds by name (`by_name`)
      "raw"     one `bytes` parameter takes the raw body
      "fastapi" FastAPI parameters (Depends, File, Form, Header, Query, ...): FastAPI binds them
    """

    kind: str
    model: type[BaseModel] | None = None
    param: str | None = None
    request_param: str | None = None
    from_query: bool = False
    list_fields: frozenset[str] = frozenset()
    finite: bool = True  # refuse NaN and Infinity literals, which are not JSON (a model opts in by its config)
    checker: Any = None  # a jsonschema validator of the body, for `input_schema` given as a JSON-schema dict
    by_name: type[BaseModel] | None = None  # for "body": the one-key model of `{"<param>": value}`

    def bind(self, body: bytes, query_string: bytes) -> dict[str, Any]:
        """Takes the body and query string, and returns the keyword arguments (raises ValidationError)."""
        if self.checker is not None and not self.from_query:
            self.check_schema(body)
        if TYPE_CHECKING:  # every kind but "fastapi" (never bound here) has a model; "raw" and "body" a param
            assert self.model is not None and self.param is not None
        if self.kind == "raw":
            return {self.param: body}
        if self.from_query:
            value = self.model.__pydantic_validator__.validate_python(parse_query(query_string, self.list_fields))
        elif self.by_name is not None and self.names_only_param(body):
            return self.bind_by_name(body)
        elif body:
            value = self.model.__pydantic_validator__.validate_json(body)
            if self.finite and (b"NaN" in body or b"Infinity" in body):
                refuse_non_finite(body, self.model.__name__)
        else:
            value = self.model.__pydantic_validator__.validate_python(None if self.kind == "body" else {})
        if self.kind == "fields":
            extra = value.__pydantic_extra__  # keys a job's **kwargs takes (None when the model forbids them)
            return {**value.__dict__, **extra} if extra else dict(value.__dict__)
        if self.kind == "body":
            return {self.param: value.root}
        return {self.param: value} if self.param else {}

    def names_only_param(self, body: bytes) -> bool:
        """Returns whether the body is a JSON object whose only key is the parameter's name."""
        if TYPE_CHECKING:  # only "body", which always has a param, has `by_name`
            assert self.param is not None
        if not body.lstrip()[:1] == b"{" or self.param.encode() not in body:
            return False
        try:
            value = from_json(body)
        except ValueError:
            return False
        return isinstance(value, dict) and len(value) == 1 and self.param in value

    def bind_by_name(self, body: bytes) -> dict[str, Any]:
        """Binds `{"<param>": value}` by name; when the value does not fit but the whole object does, the
        object is the value (a `dict` parameter), and otherwise the by-name errors are the ones raised."""
        if TYPE_CHECKING:  # only "body" has `by_name`, and always a model and a param
            assert self.by_name is not None and self.model is not None and self.param is not None
        try:
            kwargs = dict(self.by_name.__pydantic_validator__.validate_json(body).__dict__)
        except ValidationError:
            try:
                kwargs = {self.param: self.model.__pydantic_validator__.validate_json(body).root}
            except ValidationError:
                kwargs = None
            if kwargs is None:
                raise
        if self.finite and (b"NaN" in body or b"Infinity" in body):
            refuse_non_finite(body, self.model.__name__)
        return kwargs

    def check_schema(self, body: bytes) -> None:
        """Raises ValidationError if the JSON body does not match the cord's JSON schema (invalid JSON is
        left to the model, which says so in pydantic's words)."""
        from chutes.schema import check_against_schema

        if not body:
            value = {}  # as a client that sends nothing means: its errors then name the required keys
        else:
            try:
                value = from_json(body)
            except ValueError:
                return
        check_against_schema(self.checker, value, self.model.__name__ if self.model else "input_schema")

    @property
    def location(self) -> str:
        return "query" if self.from_query else "body"


def refuse_non_finite(body: bytes, title: str) -> None:
    """Raises a 422-shaped ValidationError at the first NaN or Infinity in a JSON body, if any."""
    stack: list[tuple[tuple, Any]] = [((), from_json(body))]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError.from_exception_data(title, [{"type": "finite_number", "loc": loc, "input": value}])
        if isinstance(value, dict):
            stack.extend(((*loc, k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(((*loc, i), v) for i, v in reversed(list(enumerate(value))))


def allows_inf_nan(model: type[BaseModel]) -> bool:
    """Returns whether a model opted in to NaN and Infinity (its config, or a field's allow_inf_nan)."""
    if model.model_config.get("allow_inf_nan") is True:
        return True
    return any(getattr(m, "allow_inf_nan", None) is True for f in model.model_fields.values() for m in f.metadata)


def parse_query(query_string: bytes, list_fields: frozenset[str]) -> dict[str, Any]:
    """Takes a raw query string, and returns a dict with lists only for list-typed fields."""
    values: dict[str, Any] = {}
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key in list_fields:
            values.setdefault(key, []).append(value)
        else:
            values[key] = value
    return values


def analyse_parameters(
    parameters: list[inspect.Parameter],
    *,
    method: str,
    input_schema: type[BaseModel] | None,
    model_name: str,
    fail: Callable[[str], Exception],
    whole_body: bool = False,
) -> Binding:
    """Takes a cord's parameters (without self), and returns how to bind them."""
    request_param = None
    direct: list[inspect.Parameter] = []
    uses_fastapi = False
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise fail(f"'{p}' is not supported; name each input as its own parameter")
        if is_request(p.annotation):
            request_param = p.name
        elif is_fastapi_parameter(p):
            uses_fastapi = True
        else:
            direct.append(p)
    if uses_fastapi:
        return Binding("fastapi", request_param=request_param)
    from_query = method in QUERY_METHODS
    if input_schema is not None:
        if len(direct) > 1:
            names = ", ".join(p.name for p in direct)
            raise fail(
                f"with input_schema={input_schema.__name__} the function takes one input "
                f"parameter for the validated model, not {len(direct)} ({names})"
            )
        if direct:
            check_schema_annotation(direct[0], input_schema, fail)
        param = direct[0].name if direct else None
        return model_binding("model", input_schema, param, request_param, from_query)
    if len(direct) == 1:
        ann = direct[0].annotation
        if is_model(ann):
            return model_binding("model", ann, direct[0].name, request_param, from_query)
        if ann is bytes and not from_query:
            return Binding("raw", param=direct[0].name, request_param=request_param)
        if not from_query and whole_body:
            model = build_body_model(ann, model_name, fail)
            return Binding("body", model, direct[0].name, request_param, from_query)
        if not from_query and takes_whole_body(ann):
            # the SDK's spelling (the whole body) and this project's own (`{"texts": [...]}`) both bind
            model = build_body_model(ann, model_name, fail)
            by_name = build_fields_model(direct, model_name, fail)
            return Binding("body", model, direct[0].name, request_param, from_query, by_name=by_name)
    model = build_fields_model(direct, model_name, fail)
    return model_binding("fields", model, None, request_param, from_query)


def model_binding(
    kind: str, model: type[BaseModel], param: str | None, request_param: str | None, from_query: bool
) -> Binding:
    finite = not allows_inf_nan(model)
    return Binding(kind, model, param, request_param, from_query, list_fields_of(model), finite)


def build_fields_model(
    direct: list[inspect.Parameter], model_name: str, fail: Callable[[str], Exception]
) -> type[BaseModel]:
    """Takes direct parameters, and returns a strict pydantic model with one field each."""
    fields: dict[str, Any] = {}
    for p in direct:
        if p.name.startswith("_"):
            raise fail(f"parameter '{p.name}' starts with '_', which cannot be a JSON key; rename it")
        annotation = Any if p.annotation is inspect.Parameter.empty else p.annotation
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (annotation, default)
    try:
        # allow_inf_nan=False also refuses "nan" and "inf" as strings; Field(allow_inf_nan=True) opts a parameter in
        return create_model(model_name, __config__=ConfigDict(extra="forbid", allow_inf_nan=False), **fields)
    except Exception as exc:  # pydantic raises several types for unusable annotations
        raise fail(f"its parameters cannot be validated: {exc}") from exc


def takes_whole_body(annotation: Any) -> bool:
    """Returns whether a lone parameter of this type is the whole body: `dict`, `list`, `Any` (and their forms)."""
    if annotation is Any:
        return True
    kinds = [get_origin(t) or t for t in flatten_annotation(annotation) if t is not type(None)]
    return bool(kinds) and all(k in (dict, list) for k in kinds[:1])


def build_body_model(annotation: Any, model_name: str, fail: Callable[[str], Exception]) -> type[BaseModel]:
    """Takes the annotation of a whole-body parameter, and returns a root model that validates the body."""
    if annotation is inspect.Parameter.empty:
        annotation = Any
    try:
        return create_model(model_name, __base__=RootModel[annotation])
    except Exception as exc:  # pydantic raises several types for unusable annotations
        raise fail(f"its parameter cannot be validated: {exc}") from exc


def check_schema_annotation(p: inspect.Parameter, schema: type[BaseModel], fail: Callable) -> None:
    ann = p.annotation
    if ann is inspect.Parameter.empty or ann is Any:
        return
    if not (isinstance(ann, type) and issubclass(schema, ann)):
        raise fail(
            f"parameter '{p.name}' is annotated {getattr(ann, '__name__', ann)!s} but "
            f"input_schema is {schema.__name__}; annotate it as {schema.__name__}"
        )


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def is_request(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, HTTPConnection)


def is_fastapi_parameter(p: inspect.Parameter) -> bool:
    """Takes a parameter, and returns whether only FastAPI's machinery can fill it."""
    annotation = p.annotation
    markers = [p.default]
    if get_origin(annotation) is Annotated:
        markers += annotation.__metadata__
        annotation = get_args(annotation)[0]
    if any(from_fastapi(type(m)) for m in markers) and any(is_fastapi_marker(m) for m in markers):
        return True
    return any(_is_subclass(t, STARLETTE_TYPES) or from_fastapi(t) for t in flatten_annotation(annotation))


def from_fastapi(cls: Any) -> bool:
    # fastapi costs ~0.3 s to import; only a chute that already imported it can use its markers
    return isinstance(cls, type) and cls.__module__.partition(".")[0] == "fastapi"


def is_fastapi_marker(value: Any) -> bool:
    from fastapi import params

    return isinstance(value, params.Param | params.Body | params.Depends)


def list_fields_of(model: type[BaseModel]) -> frozenset[str]:
    """Takes a model, and returns the fields that take several values from a query string."""
    names = set()
    for name, field in model.model_fields.items():
        if any(get_origin(t) in (list, set, tuple, frozenset) for t in flatten_annotation(field.annotation)):
            names.add(field.alias or name)
    return frozenset(names)


def flatten_annotation(annotation: Any) -> list[Any]:
    """Takes an annotation, and returns it with every type inside its unions and containers."""
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [t for arg in get_args(annotation) for t in flatten_annotation(arg)]
    if origin in (list, set, tuple, frozenset):
        return [annotation, *[t for arg in get_args(annotation) for t in flatten_annotation(arg)]]
    return [annotation]


def _is_subclass(annotation: Any, types: tuple[type, ...]) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, types)
