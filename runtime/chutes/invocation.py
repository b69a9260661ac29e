"""Calling cord functions: sync ones off the event loop, generators as async iterators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import iterate_in_threadpool

from chutes.streaming import NO_ITEM


def iterate(fn: Callable, chute: Any, kwargs: dict[str, Any], is_async: bool) -> AsyncIterator:
    """Takes a generator function and its arguments, and returns an async iterator of its items."""
    if is_async:
        return fn(chute, **kwargs)
    return iterate_in_threadpool(fn(chute, **kwargs))


async def first_item(items: AsyncIterator) -> Any:
    """Returns the first item, or NO_ITEM for an empty stream; errors propagate before any byte is sent."""
    try:
        return await items.__anext__()
    except StopAsyncIteration:
        return NO_ITEM
