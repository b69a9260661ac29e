"""The Chute: a set of cords and hooks that is itself an ASGI application."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from time import perf_counter
from typing import Any, TypeVar, Unpack, overload

from pydantic import BaseModel, ConfigDict, ValidationError

from chutes.body import DEFAULT_MAX_BODY_SIZE
from chutes.cord import Cord, CordOptions, define_cord
from chutes.endpoint import CLIENT_CLOSED, Endpoint, make_endpoint
from chutes.exceptions import ChuteDefinitionError, ClientDisconnected, DuplicatePath, JobDefinitionError
from chutes.job import Job, define_job
from chutes.lifecycle import Lifecycle, define_hook
from chutes.metrics import Metrics
from chutes.naming import NAME_PATTERN, derive_slug, fold_username
from chutes.node_selector import NodeSelector
from chutes.pair import PairEndpoint, make_stream_pair
from chutes.platform import platform_notes, standard_image
from chutes.responses import send_error, send_json
from chutes.routes import builtin_routes
from chutes.types import Receive, Scope, Send

__all__ = ["Chute", "ChutePack", "NodeSelector", "NAME_PATTERN"]

access_log = logging.getLogger("chutes.access")
# a decorated function: @chute.cord and @chute.job return it unchanged, so its type is kept
F = TypeVar("F", bound=Callable[..., Any])


class Chute:
    """A chute: decorated cords served as one ASGI application.

    chute = Chute(username="myuser", name="my-chute", image="my-image")

    @chute.cord(public_api_path="/hello")
    async def say_hello(self, name: str) -> dict:
        return {"message": f"Hello, {name}!"}

    uvicorn.run(chute)  # or: chutes run my_chute:chute --dev

    `name` may be written as the Chutes platform's SDK allows ("org/Model-1.5B"); the chute is served
    at its slug, one hostname label derived from username and name (`chute.slug`).
    """

    def __init__(
        self,
        username: str,
        name: str,
        image: Any,
        *,
        tagline: str = "",
        readme: str = "",
        node_selector: NodeSelector | dict | None = None,
        concurrency: int = 1,
        max_instances: int = 1,
        shutdown_after_seconds: int = 300,
        scaling_threshold: float = 0.75,
        allow_external_egress: bool = False,
        read_only_root: bool = True,
        passthrough_headers: dict[str, str] | None = None,
        max_body_size: int | None = None,
        revision: str | None = None,
        standard_template: str | None = None,
        tee: bool = False,
        encrypted_fs: bool = False,
        lock_modules: bool | None = None,
    ) -> None:
        self.username = fold_username(username)
        self.name = name
        self.label_name, self.slug = derive_slug(self.username, name)
        self.image_note: str | None = None
        mapped = standard_image(image) if isinstance(image, str) else None
        if mapped is not None:
            image, self.image_note = mapped
        self.image = check_image(image)
        self.revision = check_optional_text("revision", revision)
        self.standard_template = check_optional_text("standard_template", standard_template)
        self.platform = {"tee": bool(tee), "encrypted_fs": bool(encrypted_fs), "lock_modules": lock_modules}
        self.tagline = tagline
        self.readme = readme
        self.node_selector = check_node_selector(node_selector)
        self.concurrency = check_positive("concurrency", concurrency)
        self.max_instances = check_positive("max_instances", max_instances)
        self.shutdown_after_seconds = check_positive("shutdown_after_seconds", shutdown_after_seconds)
        if not 0 < scaling_threshold <= 1:
            raise ChuteDefinitionError(f"scaling_threshold must be in (0, 1], not {scaling_threshold!r}")
        self.scaling_threshold = scaling_threshold
        self.allow_external_egress = bool(allow_external_egress)
        self.read_only_root = bool(read_only_root)
        self.passthrough_headers = dict(passthrough_headers or {})
        env_limit = os.environ.get("CHUTES_MAX_BODY_SIZE")
        limit = max_body_size or (int(env_limit) if env_limit else DEFAULT_MAX_BODY_SIZE)
        self.max_body_size = check_positive("max_body_size", limit)
        self.dev = os.environ.get("CHUTES_DEV") == "1"
        self.log_requests = os.environ.get("CHUTES_LOG_REQUESTS") == "1"
        self.cords: list[Cord] = []
        self.jobs: dict[str, Job] = {}
        self._routes: dict[str, dict[str, tuple[Cord, Endpoint]]] = {}
        self._builtins = builtin_routes(self)
        self._lifecycle = Lifecycle()
        self._metrics = Metrics()
        self._in_flight = 0
        self._bridge = None
        self._proxy = None
        self._local_jobs = None

    def __repr__(self) -> str:
        return f"Chute(slug={self.slug!r}, cords={[c.path for c in self.cords]!r})"

    @property
    def ignored(self) -> list[str]:
        """Returns one line per SDK feature this chute asks for that a self-hosted host ignores, and why."""
        return platform_notes(self)

    @property
    def ready(self) -> bool:
        return self._lifecycle.ready

    @property
    def phase(self) -> str:
        return self._lifecycle.phase

    @overload
    def cord(self, fn: F, /) -> F: ...
    @overload
    def cord(self, fn: None = None, /, **options: Unpack[CordOptions]) -> Callable[[F], F]: ...
    def cord(self, fn: Callable | None = None, /, **options: Unpack[CordOptions]) -> Callable:
        """Registers the decorated function as a cord and returns it unchanged.

        The keywords (`path`, `method`, `stream`, `input_schema`, `passthrough`...) are those of
        `chutes.cord.CordOptions`; `define_cord` checks them and names the cord in its errors.
        """

        def register(fn: Callable) -> Callable:
            spec = define_cord(fn, **options)
            endpoint = make_endpoint(self, spec)
            paths = [spec.path, *([spec.alias] if spec.alias else [])]
            for path in paths:
                self._check_free(spec, path)
            for path in paths:
                self._add_route(spec, path, endpoint)
            self.cords.append(spec)
            return fn

        return register(fn) if fn is not None else register

    def _check_free(self, spec: Cord, path: str) -> None:
        entry = self._routes.get(path, {}).get(spec.method)
        if entry is None:
            return
        other = entry[0]
        # the SDK's LLM templates serve a streaming and a non-streaming cord on one path: the body's
        # "stream" flag picks one, so such a pair is allowed (and nothing else)
        if other.stream != spec.stream and not isinstance(entry[1], PairEndpoint):
            return
        raise DuplicatePath(
            f"{spec.where}: {spec.method} {path} is already served by {other.where}; "
            "give one of them another path or method (only a stream=True and a non-streaming cord may share one)"
        )

    def _add_route(self, spec: Cord, path: str, endpoint: Endpoint) -> None:
        methods = self._routes.setdefault(path, {})
        entry = methods.get(spec.method)
        if entry is None:
            methods[spec.method] = (spec, endpoint)
            return
        other, other_endpoint = entry
        streaming, plain = (spec, endpoint), (other, other_endpoint)
        if other.stream:
            streaming, plain = plain, streaming
        methods[spec.method] = (plain[0], make_stream_pair(plain[1], streaming[1]))

    @overload
    def job(self, fn: F, /) -> F: ...
    @overload
    def job(
        self,
        fn: None = None,
        /,
        *,
        timeout: int | None = None,
        upload: bool = True,
        ports: list | None = None,
        ssh: bool = False,
    ) -> Callable[[F], F]: ...
    def job(
        self,
        fn: Callable | None = None,
        /,
        *,
        timeout: int | None = None,
        upload: bool = True,
        ports: list | None = None,
        ssh: bool = False,
    ) -> Callable:
        """Registers the decorated function as a job (run once, on an instance of its own) and returns it unchanged.

        @chute.job(timeout=600, ports=[Port("web", 8080, "http")])
        async def render(self, frames: int, output_dir: str) -> dict: ...

        `ssh=True` opens port 2202 (tcp) for the job's own ssh server, as the SDK does.
        """

        def register(fn: Callable) -> Callable:
            spec = define_job(fn, timeout=timeout, upload=upload, ports=ports or (), ssh=ssh)
            if spec.name in self.jobs:
                other = self.jobs[spec.name].where
                raise JobDefinitionError(f"{spec.where}: {other} already has that name; rename one")
            self.jobs[spec.name] = spec
            return fn

        return register(fn) if fn is not None else register

    def on_startup(self, priority: int = 50) -> Callable:
        """Registers a hook run before the chute serves, lowest priority first."""
        return self._hook("on_startup", priority)

    def on_shutdown(self, priority: int = 50) -> Callable:
        """Registers a hook run after the last request, lowest priority first."""
        return self._hook("on_shutdown", priority)

    def _hook(self, kind: str, priority: int) -> Callable:
        if callable(priority):  # used bare, as @chute.on_startup
            self._lifecycle.add(define_hook(priority, 50, kind))
            return priority

        def register(fn: Callable) -> Callable:
            self._lifecycle.add(define_hook(fn, priority, kind))
            return fn

        return register

    def manifest(self) -> dict[str, Any]:
        """Returns what a host needs to know about this chute, as JSON-able data."""
        image = self.image if isinstance(self.image, str) else getattr(self.image, "ref", repr(self.image))
        return {
            "slug": self.slug,
            "username": self.username,
            "name": self.label_name,
            "display_name": self.name,
            "image": image,
            "revision": self.revision,
            "standard_template": self.standard_template,
            "platform": dict(self.platform),
            "ignored": self.ignored,
            "tagline": self.tagline,
            "node_selector": self.node_selector.model_dump(),
            "concurrency": self.concurrency,
            "max_instances": self.max_instances,
            "shutdown_after_seconds": self.shutdown_after_seconds,
            "scaling_threshold": self.scaling_threshold,
            "allow_external_egress": self.allow_external_egress,
            "read_only_root": self.read_only_root,
            "cords": [
                {
                    "name": c.name,
                    "path": c.path,
                    "method": c.method,
                    "stream": c.stream,
                    "passthrough": c.passthrough,
                    "output_content_type": c.output_content_type,
                    "input_fields": c.input_fields,
                    **({"alias": c.alias} if c.alias else {}),
                }
                for c in self.cords
            ],
            **({"jobs": [j.describe() for j in self.jobs.values()]} if self.jobs else {}),
        }

    def upstream_ports(self) -> list[int]:
        """Returns the local ports the passthrough cords forward to; the chute is ready once each answers."""
        return sorted({c.passthrough_port for c in self.cords if c.passthrough and c.passthrough_port is not None})

    def bridge_app(self) -> Any:
        if self._bridge is None:
            from chutes.bridge import build_bridge_app

            self._bridge = build_bridge_app(self, [c for c in self.cords if c.binding and c.binding.kind == "fastapi"])
        return self._bridge

    def local_jobs(self) -> Any:
        """Returns the /_jobs/ routes a local dev server (`chutes run`) serves; their files go to ./job-runs."""
        if self._local_jobs is None:
            from pathlib import Path

            from chutes.localjobs import LocalJobs

            self._local_jobs = LocalJobs(self, Path("job-runs"))
        return self._local_jobs

    def proxy(self) -> Any:
        if self._proxy is None:
            from chutes.proxy import Proxy

            self._proxy = Proxy()
        return self._proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._serve(scope, receive, send)
        elif kind == "lifespan":
            await self._run_lifespan(receive, send)
        else:
            await send({"type": "websocket.close", "code": 1003})

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        methods = self._routes.get(path)
        if methods is None:
            if path.startswith("/_jobs/") and self.jobs and os.environ.get("CHUTES_LOCAL_JOBS") == "1":
                await self.local_jobs()(scope, receive, send)
                return
            builtin = self._builtins.get(path)
            if builtin is not None:
                await builtin(scope, receive, send)
                return
            await send_json(
                send,
                404,
                {"detail": f"no cord is served at {path}; see /docs for this chute's cords"},
            )
            return
        method = scope["method"]
        entry = methods.get(method)
        if entry is None and method == "HEAD":  # the server sends the GET answer's headers only
            entry = methods.get("GET")
        if entry is None:
            allow = ", ".join(sorted({*methods, "HEAD"} if "GET" in methods else methods)).encode()
            detail = f"{path} takes {allow.decode()}, not {method}"
            await send_json(send, 405, {"detail": detail}, [(b"allow", allow)])
            return
        cord, endpoint = entry
        start = perf_counter()
        try:
            body = await endpoint.read(scope, receive)  # before taking a slot: slow senders hold none
        except ClientDisconnected:
            self._metrics.observe(cord.name, method, CLIENT_CLOSED, perf_counter() - start)
            return
        except Exception as exc:
            status = await send_error(send, exc, cord.where, dev=self.dev)
            self._metrics.observe(cord.name, method, status, perf_counter() - start)
            return
        if self._in_flight >= self.concurrency:
            detail = f"this chute is serving its limit of {self.concurrency} concurrent requests; retry shortly"
            await send_json(send, 429, {"detail": detail}, [(b"retry-after", b"1")])
            self._metrics.observe(cord.name, method, 429, 0.0)
            return
        self._in_flight += 1
        status = 500
        try:
            status = await endpoint.run(scope, receive, send, body)
        finally:
            self._in_flight -= 1
            elapsed = perf_counter() - start
            self._metrics.observe(cord.name, method, status, elapsed)
            if self.log_requests:
                access_log.info("%s %s %s %d %.1fms", method, path, cord.name, status, elapsed * 1000)

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._lifecycle.start(self, upstreams=self.upstream_ports())
                except Exception as exc:
                    # The server logs this message (uvicorn does, at ERROR): logging it here too
                    # printed the hook's traceback twice.
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._lifecycle.stop(self)
                if self._proxy is not None:
                    await self._proxy.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


class ChutePack(BaseModel):
    """A chute with named handles on its cords, as the SDK's templates return it.

    `chutes run mod:chute` and `chutes deploy mod:chute` accept a pack and serve its `chute`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="allow")

    chute: Chute

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.chute(scope, receive, send)


def check_optional_text(field: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise ChuteDefinitionError(f"{field} must be one line of text (e.g. a commit hash), not {value!r}")
    return value


def check_image(image: Any) -> Any:
    if isinstance(image, str):
        if not image.strip():
            raise ChuteDefinitionError("image must name a prebuilt image (e.g. 'my-image:1.0') or be an Image")
        return image
    try:
        from chutes.image import Image
    except ImportError:
        return image
    if not isinstance(image, Image):
        raise ChuteDefinitionError(f"image must be a str or a chutes.image.Image, not {type(image).__name__}")
    return image


def check_node_selector(value: NodeSelector | dict | None) -> NodeSelector:
    if value is None or isinstance(value, NodeSelector):
        return value or NodeSelector()
    if isinstance(value, dict):
        try:
            return NodeSelector(**value)
        except ValidationError as exc:
            raise ChuteDefinitionError(f"node_selector is invalid: {exc}") from None
    if isinstance(value, BaseModel):
        return NodeSelector(**value.model_dump())
    raise ChuteDefinitionError(f"node_selector must be a NodeSelector or a dict, not {type(value).__name__}")


def check_positive(field: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ChuteDefinitionError(f"{field} must be a whole number of at least 1, not {value!r}")
    return value
