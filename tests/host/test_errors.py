"""The host's errors are one tree, drawn in chutes_host.errors, and become HTTP answers in one place."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable

import httpx
from fastapi import FastAPI

import chutes_host
from chutes_host import errors
from chutes_host.control.shared import add_error_handlers
from chutes_host.errors import AccountError, BundleError, HostError, JobError, SecretError

# errors that stay with their code (the module's docstring says why)
OUTSIDE_THE_TREE = {"ExecutorError", "BuildStopped", "ManifestError", "RenderError", "HostAPIError"}


def drawn_tree() -> dict[str, str]:
    """Returns {class: parent} as the module's docstring draws it."""
    parents: dict[str, str] = {}
    stack: list[str] = []
    for line in errors.__doc__.splitlines():
        match = re.match(r"^    ((?:[│ ]   )*)(?:[├└]── )?([A-Z]\w+)\s", line + " ")
        if not match:
            continue
        depth = len(match.group(1)) // 4 + (1 if "──" in line else 0)
        stack[depth:] = [match.group(2)]
        if depth:
            parents[match.group(2)] = stack[depth - 1]
    return parents


def test_the_docstring_draws_every_host_error_under_its_real_parent() -> None:
    real = {
        name: cls.__mro__[1].__name__
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, HostError) and cls is not HostError
    }
    assert drawn_tree() == real


def test_every_error_class_of_the_host_is_in_the_tree() -> None:
    loose = set()
    for info in pkgutil.walk_packages(chutes_host.__path__, "chutes_host."):
        module = importlib.import_module(info.name)
        for name, cls in vars(module).items():
            if (
                inspect.isclass(cls)
                and issubclass(cls, Exception)
                and cls.__module__ == info.name
                and not issubclass(cls, HostError)
            ):
                loose.add(name)
    assert loose <= OUTSIDE_THE_TREE


def raiser(exc: Exception) -> Callable[[], None]:
    def endpoint() -> None:
        raise exc

    return endpoint


async def test_domain_errors_answer_with_their_status_and_detail() -> None:
    app = FastAPI()
    add_error_handlers(app)
    raised = {
        "/account": AccountError("no key with prefix 'cpk_x'"),
        "/bundle": BundleError("the upload is empty"),
        "/secret": SecretError("the secret's value is empty", status=422),
        "/job": JobError("job 'train': bad", status=422, detail=[{"loc": ["body", "n"], "msg": "bad"}]),
        "/host": HostError("the host cannot"),
    }
    for path, exc in raised.items():
        app.add_api_route(path, raiser(exc))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        answers = {path: await client.get(path) for path in raised}
    assert {p: (r.status_code, r.json()["detail"]) for p, r in answers.items()} == {
        "/account": (404, "no key with prefix 'cpk_x'"),
        "/bundle": (400, "the upload is empty"),
        "/secret": (422, "the secret's value is empty"),
        "/job": (422, [{"loc": ["body", "n"], "msg": "bad"}]),
        "/host": (500, "the host cannot"),
    }
