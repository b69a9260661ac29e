"""A minimal streaming HTTP client on the standard library, so `chutes invoke` starts fast."""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from chutes_cli.errors import CLIError

USER_AGENT = "chutes-cli"


@dataclass
class Request:
    """One HTTP request: method, absolute URL, headers (first wins) and an optional body."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def __repr__(self) -> str:
        size = len(self.body) if self.body is not None else 0
        return f"Request({self.method} {self.url}, {size} bytes)"


def send_request(request: Request, *, timeout: float) -> http.client.HTTPResponse:
    """Sends `request` and returns the response with its body still unread (for streaming)."""
    parts = urlsplit(request.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CLIError(f"invalid URL {request.url!r}: use http://HOST:PORT/path.", exit_code=2)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    connection = open_connection(parts.scheme, parts.hostname, parts.port, timeout)
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **request.headers}
    if request.body is not None:
        headers.setdefault("Content-Length", str(len(request.body)))
    origin = f"{parts.scheme}://{parts.netloc}"
    try:
        connection.request(request.method, target, body=request.body, headers=headers)
        return connection.getresponse()
    except (ConnectionRefusedError, socket.gaierror) as exc:
        raise unreachable(origin, exc) from None
    except TimeoutError:
        raise CLIError(
            f"no answer from {origin} within {timeout:g} s. The chute may still be starting or busy; "
            "wait, or raise the limit with --timeout."
        ) from None
    except (ConnectionError, http.client.HTTPException, OSError) as exc:
        if type(exc).__module__ == "ssl":
            reason = getattr(exc, "reason", None) or exc
            raise CLIError(f"TLS error talking to {origin}: {reason}. Check the URL's scheme and host.") from None
        raise CLIError(f"the connection to {origin} failed: {describe_oserror(exc)}. Is the server healthy?") from None


def open_connection(scheme: str, host: str, port: int | None, timeout: float) -> http.client.HTTPConnection:
    """Returns an unconnected HTTP(S) connection to host:port."""
    if scheme == "https":
        import ssl

        return http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    return http.client.HTTPConnection(host, port, timeout=timeout)


def unreachable(origin: str, exc: OSError) -> CLIError:
    """Builds the error for a server that cannot be reached."""
    if isinstance(exc, socket.gaierror):
        reason = "the host name does not resolve"
    else:
        reason = "connection refused"
    return CLIError(
        f"cannot reach {origin} ({reason}). Is the chute running? Start it with "
        "`chutes run my_chute:chute`, or point --url at the right address."
    )


def describe_oserror(exc: BaseException) -> str:
    """Returns a short human description of a socket-level error."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def iter_chunks(response: http.client.HTTPResponse, size: int = 65536):
    """Yields body chunks as soon as they arrive (not waiting to fill `size`)."""
    while True:
        try:
            chunk = response.read1(size)
        except http.client.IncompleteRead:
            raise CLIError("the server closed the connection in the middle of the response.") from None
        except TimeoutError:
            raise CLIError("the response stalled: no data within --timeout seconds.") from None
        except (ConnectionError, OSError) as exc:
            raise CLIError(f"the connection broke while reading the response: {describe_oserror(exc)}.") from None
        if not chunk:
            return
        yield chunk
