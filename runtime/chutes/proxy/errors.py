"""Upstream failures of the proxy, and the one place foreign errors become them.

UpstreamError              the upstream could not give a complete response (has status, detail)
├── UpstreamUnreachable    no connection could be made (502)
├── UpstreamTimeout        no response headers, or no body bytes, within read_timeout (504)
├── UpstreamClosed         the connection ended before the response was complete (502)
└── UpstreamInvalid        the upstream's bytes are not a valid HTTP/1.1 response (502)
ClientDisconnected         the downstream client went away; the upstream connection is closed
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httptools


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


class ClientDisconnected(Exception):
    """The downstream client disconnected while the response was being relayed."""


def describe_reason(exc: BaseException) -> str:
    """Takes an OS-level error, and returns its human reason ('Connection refused')."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@contextmanager
def translating_errors(host: str, port: int, *, connecting: bool, timeout: float) -> Iterator[None]:
    """Turns socket, timeout and parser errors raised inside into `UpstreamError`s."""
    try:
        yield
    except (UpstreamError, ClientDisconnected):
        raise
    except TimeoutError as exc:
        if connecting:
            raise UpstreamUnreachable(
                f"upstream {host}:{port} is not reachable: no connection within {timeout:g} s"
            ) from exc
        raise UpstreamTimeout(f"upstream {host}:{port} did not respond within {timeout:g} s") from exc
    except httptools.HttpParserError as exc:
        raise UpstreamInvalid(f"upstream {host}:{port} sent an invalid HTTP response: {exc}") from exc
    except OSError as exc:
        if connecting:
            raise UpstreamUnreachable(f"upstream {host}:{port} is not reachable: {describe_reason(exc)}") from exc
        raise UpstreamClosed(
            f"upstream {host}:{port} closed the connection before the response was complete: {describe_reason(exc)}"
        ) from exc
