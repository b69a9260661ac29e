"""Cords with FastAPI parameters (Depends, File, Form, Header, Query, ...) served by FastAPI itself.

Plain cords never come here: their binding is precomputed and costs no dependency solving.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin

from fastapi import Body, FastAPI, Form, Query
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from chutes.binding import flatten_annotation, is_fastapi_parameter, is_request
from chutes.cord import is_generator
from chutes.invocation import first_item, iterate
from chutes.responses import describe_error, send_json, send_result
from chutes.streaming import send_stream
from chutes.types import Receive, Scope, Send

if TYPE_CHECKING:
    from starlette.background import BackgroundTask

    from chutes.chute import Chute
    from chutes.cord import Cord


class SentBy(Response):
    """A Response whose sending is done by a function: lets FastAPI endpoints return our responses."""

    def __init__(self, sender: Callable, status_code: int = 200) -> None:
        self.sender = sender
        self.status_code = status_code
        self.background: BackgroundTask | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.status_code = await self.sender(scope, receive, send)
        if self.background is not None:
            await self.background()


def bridged_signature(cord: Cord) -> inspect.Signature:
    """Takes a cord, and returns its signature with direct parameters marked as body keys for FastAPI."""
    signature = inspect.signature(cord.fn, eval_str=True)
    parameters = list(signature.parameters.values())[1:]
    from_query = cord.method in ("GET", "DELETE")
    uses_form = any(_is_form(p) for p in parameters)
    marked = []
    for p in parameters:
        if is_request(p.annotation) or is_fastapi_parameter(p):
            marked.append(p)
            continue
        marker = Query() if from_query else Form() if uses_form else Body(embed=True)
        annotation = Any if p.annotation is inspect.Parameter.empty else p.annotation
        marked.append(p.replace(annotation=Annotated[annotation, marker]))
    return signature.replace(parameters=marked, return_annotation=inspect.Signature.empty)


def _is_form(p: inspect.Parameter) -> bool:
    from fastapi import params

    annotation = p.annotation
    markers = [p.default]
    if get_origin(annotation) is Annotated:
        markers += annotation.__metadata__
        annotation = get_args(annotation)[0]
    if any(isinstance(m, params.Form) for m in markers):  # File is a Form
        return True
    return any(isinstance(t, type) and issubclass(t, UploadFile) for t in flatten_annotation(annotation))


def bridged_endpoint(chute: Chute, cord: Cord) -> Callable:
    """Takes a FastAPI-style cord, and returns a FastAPI endpoint that calls it with the chute as self."""
    fn = cord.fn
    yields = cord.stream and is_generator(fn)  # else a stream=True cord returns its StreamingResponse

    async def endpoint(**kwargs: Any) -> Response:
        try:
            if yields:
                items = iterate(fn, chute, kwargs, cord.is_async)
                first = await first_item(items)
                return SentBy(lambda s, r, send: send_stream(cord, items, first, r, send, dev=chute.dev))
            if cord.is_async:
                result = await fn(chute, **kwargs)
            else:
                result = await run_in_threadpool(fn, chute, **kwargs)
        except (HTTPException, RequestValidationError):
            raise
        except Exception as exc:
            status, payload, headers = describe_error(exc, cord.where, dev=chute.dev)
            return SentBy(lambda s, r, send: send_json(send, status, payload, headers), status)
        return SentBy(lambda s, r, send: send_result(result, cord, s, r, send))

    endpoint.__signature__ = bridged_signature(cord)
    endpoint.__name__ = cord.name
    return endpoint


def build_bridge_app(chute: Chute, cords: list[Cord]) -> FastAPI:
    """Takes FastAPI-style cords, and returns one FastAPI app that serves them all."""

    async def internal_error(request: Request, exc: Exception) -> Response:
        status, payload, headers = describe_error(exc, f"chute '{chute.name}'", dev=chute.dev)
        return SentBy(lambda s, r, send: send_json(send, status, payload, headers), status)

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.add_exception_handler(Exception, internal_error)
    for cord in cords:
        app.add_api_route(cord.path, bridged_endpoint(chute, cord), methods=[cord.method], response_model=None)
    return app
