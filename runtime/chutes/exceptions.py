"""Every exception chutes raises on purpose, in one tree.

    ChutesError
    ├── ChuteDefinitionError   a Chute(...) argument is invalid
    ├── CordDefinitionError    a @chute.cord(...) or hook mistake, found at decoration time
    │   ├── InvalidPath        a cord path that is not a URL path
    │   ├── DuplicatePath      a path and method another cord already serves
    │   └── JobDefinitionError a @chute.job(...) mistake, found at decoration time
    ├── ChuteLoadError         a 'module:attr' reference cannot be loaded
    ├── StartupError           an on_startup hook failed; the server must not serve
    ├── AuthenticationRequired the SDK's name for a call that needs an API key
    ├── NotConfigured          the SDK's name for a missing client configuration
    ├── StillProvisioning      the SDK's name for a chute that has no ready instance yet
    └── ClientDisconnected     the client went away mid-request (the server and the proxy end it quietly)

`chutes.exception` re-exports the SDK's names, so code written for the Chutes platform imports them.

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


class InvalidPath(CordDefinitionError):
    """A cord's path, public_api_path or passthrough_path is not a URL path."""


class DuplicatePath(CordDefinitionError):
    """Two cords of a chute claim the same path and method (and neither streams where the other does not)."""


class JobDefinitionError(CordDefinitionError):
    """A decorated function cannot become a job (bad timeout, ports or parameters); the message names it."""


class ChuteLoadError(ChutesError):
    """A chute reference ('module:attr' or 'file.py:attr') cannot be loaded."""

    user_traceback: str  # set when importing the user's module raised: its traceback, without chutes' frames


class StartupError(ChutesError):
    """An `on_startup` hook raised; the message holds the hook's name and traceback."""


class AuthenticationRequired(ChutesError, RuntimeError):
    """A call needs an API key and none was configured."""


class NotConfigured(ChutesError, RuntimeError):
    """The client has no configuration (host URL or API key) to act on."""


class StillProvisioning(ChutesError, RuntimeError):
    """The chute has no ready instance yet; retry shortly."""


class ClientDisconnected(ChutesError):
    """The client disconnected before its request body was complete, or while the response was relayed."""
