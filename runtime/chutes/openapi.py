"""The OpenAPI document of a chute: every cord's body, media type and streaming, built once on demand."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, FastAPI, Query

from chutes.bridge import bridged_signature

if TYPE_CHECKING:
    from chutes.chute import Chute
    from chutes.cord import Cord

REF_TEMPLATE = "#/components/schemas/{model}"


def build_openapi(chute: Chute) -> dict[str, Any]:
    """Takes a chute, and returns its OpenAPI document as a dict."""
    from chutes import __version__

    app = FastAPI(
        title=f"{chute.username}/{chute.name}",
        summary=chute.tagline or None,
        description=chute.readme or "",
        version=__version__,
    )
    for cord in chute.cords:
        app.add_api_route(
            cord.path,
            documented_stub(cord),
            methods=[cord.method],
            name=cord.name,
            summary=cord.name.replace("_", " "),
            description=inspect.getdoc(cord.fn) or "",
            response_model=None,
            responses=documented_responses(cord),
            openapi_extra=extensions(cord),
        )
    document = app.openapi()
    for cord in chute.cords:  # FastAPI adds its default JSON media type beside ours
        operation = document["paths"][cord.path][cord.method.lower()]
        operation["responses"]["200"]["content"] = documented_responses(cord)[200]["content"]
        if cord.input_json_schema is not None and "requestBody" in operation:  # given as a dict, SDK style
            operation["requestBody"]["content"] = {"application/json": {"schema": cord.input_json_schema}}
        if cord.output_schema is not None and not cord.stream:
            content = operation["responses"]["200"]["content"]
            for media in content.values():
                media["schema"] = cord.output_schema
    add_minimal_schemas(chute, document)
    return document


def documented_stub(cord: Cord):
    """Takes a cord, and returns a stand-in function whose signature FastAPI documents as the cord's input."""

    async def stub(**kwargs: Any) -> None:
        raise AssertionError("documentation only")

    binding = cord.binding
    if binding is None or binding.kind == "raw":
        parameters = []
    elif binding.kind == "fastapi":
        stub.__signature__ = bridged_signature(cord)
        return stub
    else:
        marker = Query() if binding.from_query else Body()
        annotation = Annotated[binding.model, marker]
        parameters = [inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=annotation)]
    stub.__signature__ = inspect.Signature(parameters)
    return stub


def documented_responses(cord: Cord) -> dict[int | str, dict[str, Any]]:
    if cord.stream:
        media_type = cord.output_content_type or "text/event-stream"
        description = "A stream: each item is sent as it is made"
    else:
        media_type = cord.output_content_type or "application/json"
        description = "Successful response"
    if cord.passthrough:
        description = f"The response of 127.0.0.1:{cord.passthrough_port}{cord.passthrough_path}, streamed back"
    return {
        200: {"description": description, "content": {media_type: {}}},
        413: {"description": "Request body over the chute's size limit"},
        429: {"description": "The chute is at its concurrency limit; retry after Retry-After seconds"},
    }


def extensions(cord: Cord) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "x-chutes-stream": cord.stream,
        "x-chutes-passthrough": cord.passthrough,
    }
    binding = cord.binding
    if binding is not None and binding.kind == "raw":
        extra["requestBody"] = {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    elif cord.passthrough and binding is None and cord.method not in ("GET", "DELETE"):
        extra["requestBody"] = {"content": {"application/json": {"schema": {}}}}
    return extra


def add_minimal_schemas(chute: Chute, document: dict[str, Any]) -> None:
    """Documents each cord's minimal_input_schema as the `x-chutes-minimal-input-schema` extension."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for cord in chute.cords:
        if cord.minimal_input_model is None:
            continue
        schema = cord.minimal_input_model.model_json_schema(ref_template=REF_TEMPLATE)
        schemas.update(schema.pop("$defs", {}))
        schemas[cord.minimal_input_model.__name__] = schema
        operation = document["paths"][cord.path][cord.method.lower()]
        operation["x-chutes-minimal-input-schema"] = {
            "$ref": REF_TEMPLATE.format(model=cord.minimal_input_model.__name__)
        }


def docs_html(chute: Chute) -> bytes:
    from chutes.swagger import swagger_html

    return swagger_html(title=f"{chute.slug} - docs", openapi_url="/openapi.json")
