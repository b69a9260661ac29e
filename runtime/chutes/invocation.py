"""Calling cord functions: sync ones off the event loop, generators as async iterators."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from starlette.concurrency import iterate_in_threadpool

from chutes.streaming import NO_ITEM


def iterate(fn: Callable, chute: Any, kwargs: dict[str, Any], is_async: bool) -> AsyncGenerator:
    """Takes a generator function and its arguments, and returns an async generator of its items."""
    if is_async:
        return fn(chute, **kwargs)
    # starlette declares an AsyncIterator, but iterate_in_threadpool is an async generator function
    return iterate_in_threadpool(fn(chute, **kwargs))  # pyright: ignore[reportReturnType]


async def first_item(items: AsyncIterator) -> Any:
    """Returns the first item, or NO_ITEM for an empty stream; errors propagate before any byte is sent."""
    try:
        return await items.__anext__()
    except StopAsyncIteration:
        return NO_ITEM
