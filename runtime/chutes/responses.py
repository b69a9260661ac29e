"""Turning cord results and errors into ASGI responses, per the wire contract."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_json
from starlette.exceptions import HTTPException
from starlette.responses import Response

from chutes.types import Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi.exceptions import RequestValidationError

    from chutes.cord import Cord

logger = logging.getLogger("chutes")

JSON_TYPE = b"application/json"
OCTET_STREAM = "application/octet-stream"


async def send_body(send: Send, status: int, body: bytes, content_type: bytes, headers=()) -> int:
    """Sends a complete response, and returns its status."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return status


async def send_json(send: Send, status: int, content: Any, headers=()) -> int:
    return await send_body(send, status, to_json(content, fallback=str, inf_nan_mode="null"), JSON_TYPE, headers)


async def send_result(result: Any, cord: Cord, scope: Scope, receive: Receive, send: Send) -> int:
    """Sends what a cord returned: a Response as it is, bytes/str in its media type, anything else as JSON."""
    if isinstance(result, Response):
        await result(scope, receive, send)
        return result.status_code
    if isinstance(result, bytes | bytearray | memoryview):
        media_type = cord.output_content_type or OCTET_STREAM
        return await send_body(send, 200, bytes(result), media_type.encode())
    if isinstance(result, str) and cord.output_content_type:
        return await send_body(send, 200, result.encode(), content_type_of(cord.output_content_type))
    try:
        body = to_json(result, inf_nan_mode="null")
    except PydanticSerializationError as exc:
        logger.error("%s returned a value that is not JSON: %s", cord.where, exc)
        detail = f"{cord.where} returned a {type(result).__name__}, which cannot be sent as JSON"
        return await send_json(send, 500, {"detail": detail})
    return await send_body(send, 200, body, JSON_TYPE)


def content_type_of(media_type: str) -> bytes:
    if media_type.startswith("text/") and "charset" not in media_type:
        media_type += "; charset=utf-8"
    return media_type.encode()


def describe_error(exc: BaseException, where: str, *, location: str = "body", dev: bool = False):
    """Takes an exception raised while serving, and returns (status, payload, headers)."""
    if isinstance(exc, HTTPException):
        headers = [(k.lower().encode(), str(v).encode()) for k, v in (exc.headers or {}).items()]
        return exc.status_code, {"detail": exc.detail}, headers
    if isinstance(exc, ValidationError):
        return 422, {"detail": validation_details(exc, location)}, []
    fastapi_exceptions = sys.modules.get("fastapi.exceptions")  # only a chute that imported FastAPI raises its errors
    if fastapi_exceptions is not None:
        request_validation_error: type[RequestValidationError] = fastapi_exceptions.RequestValidationError
        if isinstance(exc, request_validation_error):
            return 422, {"detail": list(exc.errors())}, []
    logger.error("%s raised %s", where, type(exc).__name__, exc_info=exc)
    if dev:
        trace = "".join(traceback.format_exception(exc))
        return 500, {"detail": f"{type(exc).__name__}: {exc}", "traceback": trace}, []
    return 500, {"detail": "Internal Server Error"}, []


def validation_details(exc: ValidationError, location: str) -> list[dict[str, Any]]:
    """Takes a pydantic error, and returns FastAPI-shaped field errors under `location`."""
    details = []
    for error in exc.errors(include_url=False, include_context=False):
        if error["type"] == "json_invalid":
            error.pop("input", None)
            error["msg"] = f'{error["msg"]}; send a JSON object, e.g. {{"name": "value"}}'
        error["loc"] = (location, *error["loc"])
        details.append(error)
    return details


async def send_error(send: Send, exc: BaseException, where: str, *, location: str = "body", dev: bool = False) -> int:
    status, payload, headers = describe_error(exc, where, location=location, dev=dev)
    return await send_json(send, status, payload, headers)
