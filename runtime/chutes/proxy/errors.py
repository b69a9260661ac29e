"""Upstream failures of the proxy, and the one place foreign errors become them.

UpstreamError              the upstream could not give a complete response (has status, detail)
├── UpstreamUnreachable    no connection could be made (502)
├── UpstreamTimeout        no response headers, or no body bytes, within read_timeout (504)
├── UpstreamClosed         the connection ended before the response was complete (502)
└── UpstreamInvalid        the upstream's bytes are not a valid HTTP/1.1 response (502)
ClientDisconnected         the downstream client went away; the upstream connection is closed
                           (chutes.exceptions' own, raised here too)
"""

from __future__ import annotations

from typing import overload

import httptools

from chutes.exceptions import ClientDisconnected


class UpstreamError(Exception):
    """The upstream could not give a complete response; `status` is what the client gets."""

    status = 502

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UpstreamUnreachable(UpstreamError):
    """No connection to the upstream could be made."""


class UpstreamTimeout(UpstreamError):
    """The upstream sent nothing within the read timeout."""

    status = 504


class UpstreamClosed(UpstreamError):
    """The upstream closed the connection before the response was complete."""


class UpstreamInvalid(UpstreamError):
    """The upstream sent bytes that are not an HTTP/1.1 response."""


def describe_reason(exc: BaseException) -> str:
    """Takes an OS-level error, and returns its human reason ('Connection refused')."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@overload
def translate_error(
    exc: OSError | httptools.HttpParserError | UpstreamError, host: str, port: int, *, connecting: bool, timeout: float
) -> UpstreamError: ...
@overload
def translate_error(exc: BaseException, host: str, port: int, *, connecting: bool, timeout: float) -> BaseException: ...
def translate_error(exc: BaseException, host: str, port: int, *, connecting: bool, timeout: float) -> BaseException:
    """Takes an error raised while talking to host:port, and returns the `UpstreamError` for it.

    Errors that are not about the upstream (a client disconnect, a bug) come back unchanged.
    """
    if isinstance(exc, UpstreamError | ClientDisconnected):
        return exc
    # a Unix socket: its path means nothing to the client, and may be private
    where = "instance:socket" if host.startswith("/") else f"{host}:{port}"
    if isinstance(exc, TimeoutError):
        if connecting:
            return UpstreamUnreachable(f"upstream {where} is not reachable: no connection within {timeout:g} s")
        return UpstreamTimeout(f"upstream {where} did not respond within {timeout:g} s")
    if isinstance(exc, httptools.HttpParserError):
        return UpstreamInvalid(f"upstream {where} sent an invalid HTTP response: {exc}")
    if isinstance(exc, OSError):
        if connecting:
            return UpstreamUnreachable(f"upstream {where} is not reachable: {describe_reason(exc)}")
        return UpstreamClosed(
            f"upstream {where} closed the connection before the response was complete: {describe_reason(exc)}"
        )
    return exc
