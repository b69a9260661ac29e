"""Every exception chutes raises on purpose, in one tree.

    ChutesError
    ├── ChuteDefinitionError   a Chute(...) argument is invalid
    ├── CordDefinitionError    a @chute.cord(...) or hook mistake, found at decoration time
    ├── ChuteLoadError         a 'module:attr' reference cannot be loaded
    └── StartupError           an on_startup hook failed; the server must not serve

The passthrough proxy's errors (`chutes.proxy.errors`: UpstreamError and its kinds, unreachable,
timeout, closed, invalid) are translated into 502/504 answers there and never reach user code.

Errors raised while serving a request are HTTP errors (starlette's HTTPException) or pydantic
ValidationErrors; they become responses in `chutes.responses` and never leave the server.
"""

from __future__ import annotations


class ChutesError(Exception):
    """Base class of every error chutes raises on purpose."""


class ChuteDefinitionError(ChutesError, ValueError):
    """A `Chute(...)` argument is invalid."""


class CordDefinitionError(ChutesError, ValueError):
    """A decorated function cannot become a cord or hook; the message names it and the fix."""


class ChuteLoadError(ChutesError):
    """A chute reference ('module:attr' or 'file.py:attr') cannot be loaded."""


class StartupError(ChutesError):
    """An `on_startup` hook raised; the message holds the hook's name and traceback."""
