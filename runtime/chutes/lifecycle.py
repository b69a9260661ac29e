"""Startup and shutdown hooks, run in the ASGI lifespan on the serving event loop."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from chutes.exceptions import CordDefinitionError, StartupError

logger = logging.getLogger("chutes")

UPSTREAM_HOST = "127.0.0.1"
UPSTREAM_TIMEOUT_ENV = "CHUTES_UPSTREAM_TIMEOUT"
DEFAULT_UPSTREAM_TIMEOUT = 300.0
UPSTREAM_POLL = 0.05


@dataclass(frozen=True, slots=True)
class Hook:
    """A function run once when the chute starts or stops, lowest priority first."""

    fn: Callable[..., Any]
    priority: int
    kind: str

    @property
    def name(self) -> str:
        return getattr(self.fn, "__name__", repr(self.fn))

    @property
    def where(self) -> str:
        code = getattr(self.fn, "__code__", None)
        if code is None:
            return f"{self.kind} hook '{self.name}'"
        return f"{self.kind} hook '{self.name}' ({os.path.basename(code.co_filename)}:{code.co_firstlineno})"

    def __repr__(self) -> str:
        return f"Hook({self.kind}, {self.name!r}, priority={self.priority})"


def define_hook(fn: Callable[..., Any], priority: int, kind: str) -> Hook:
    """Takes a hook function, and returns its Hook (or raises CordDefinitionError)."""
    hook = Hook(fn, priority, kind)
    if not callable(fn):
        raise CordDefinitionError(f"@chute.{kind} decorates a function, not {type(fn).__name__}")
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise CordDefinitionError(f"{hook.where}: priority must be an int, not {priority!r}")
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise CordDefinitionError(f"{hook.where}: a hook runs once and must not yield; use return")
    if not list(inspect.signature(fn).parameters):
        raise CordDefinitionError(f"{hook.where}: the hook must take 'self' (the chute) as its parameter")
    return hook


async def run_hook(hook: Hook, chute: Any) -> None:
    if inspect.iscoroutinefunction(hook.fn):
        await hook.fn(chute)
    else:
        await run_in_threadpool(hook.fn, chute)


class Lifecycle:
    """Runs a chute's hooks and knows which phase the chute is in."""

    def __init__(self) -> None:
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self.phase = "waiting for the server's lifespan startup event"
        self.ready = False

    def add(self, hook: Hook) -> None:
        hooks = self.startup_hooks if hook.kind == "on_startup" else self.shutdown_hooks
        hooks.append(hook)
        hooks.sort(key=lambda h: h.priority)  # stable: equal priorities keep declaration order

    async def start(self, chute: Any, *, upstreams: Sequence[int] = ()) -> None:
        """Runs every startup hook in order, then waits until each passthrough upstream port answers.

        Raises StartupError naming the hook that failed, or the upstream that never answered.
        """
        timeout = upstream_timeout() if upstreams else 0.0
        for port in upstreams:
            if await accepts_connections(UPSTREAM_HOST, port):
                logger.warning(
                    "passthrough upstream %s:%d already accepts connections before on_startup ran: another "
                    "process holds that port, so this chute's passthrough cords may reach it instead of the "
                    "server its hooks start. Stop that process, or pick another passthrough_port.",
                    UPSTREAM_HOST,
                    port,
                )
        await self._run_startup_hooks(chute)
        for port in upstreams:
            await self._wait_for_upstream(port, timeout)
        self.phase = "ready"
        self.ready = True

    async def _run_startup_hooks(self, chute: Any) -> None:
        total = len(self.startup_hooks)
        for index, hook in enumerate(self.startup_hooks, 1):
            self.phase = f"starting: running on_startup hook '{hook.name}' ({index}/{total})"
            try:
                await run_hook(hook, chute)
            except BaseException as exc:
                self.phase = f"failed: {hook.where} raised {type(exc).__name__}: {exc}"
                trace = "".join(traceback.format_exception(exc))
                raise StartupError(f"{hook.where} failed, so the chute cannot serve:\n{trace}") from exc

    async def _wait_for_upstream(self, port: int, timeout: float) -> None:
        target = f"{UPSTREAM_HOST}:{port}"
        self.phase = f"waiting for upstream {target}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if not await accepts_connections(UPSTREAM_HOST, port):
            logger.info("waiting up to %g s for the passthrough upstream %s to accept connections", timeout, target)
        while not await accepts_connections(UPSTREAM_HOST, port):
            if loop.time() >= deadline:
                self.phase = f"failed: upstream {target} did not accept a connection within {timeout:g} s"
                raise StartupError(
                    f"the passthrough upstream {target} did not accept a connection within {timeout:g} s "
                    "after on_startup finished, so the chute cannot serve. Start its server in an on_startup "
                    f"hook, listening on {target}, or allow it longer with {UPSTREAM_TIMEOUT_ENV}=SECONDS."
                )
            await asyncio.sleep(UPSTREAM_POLL)

    async def stop(self, chute: Any) -> None:
        """Runs every shutdown hook in order; a failing one is logged and the rest still run."""
        self.ready = False
        self.phase = "stopping"
        for hook in self.shutdown_hooks:
            try:
                await run_hook(hook, chute)
            except Exception:
                logger.exception("%s failed", hook.where)
        self.phase = "stopped"


def upstream_timeout() -> float:
    """Returns how long a chute waits for its passthrough upstreams ($CHUTES_UPSTREAM_TIMEOUT, in seconds)."""
    return seconds_from_env(UPSTREAM_TIMEOUT_ENV, DEFAULT_UPSTREAM_TIMEOUT, example=600)


def seconds_from_env(name: str, default: float, *, example: float) -> float:
    """Returns the positive number of seconds in environment variable `name`, or `default` when it is unset."""
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise StartupError(f"{name}={text!r} must be a number of seconds above 0, e.g. {example:g}")
    return value


async def accepts_connections(host: str, port: int) -> bool:
    """Tells whether something accepts TCP connections on host:port."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
