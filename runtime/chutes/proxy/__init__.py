"""The streaming reverse proxy shared by passthrough cords and the host gateway."""

from __future__ import annotations

from chutes.proxy.errors import (
    ClientDisconnected,
    UpstreamClosed,
    UpstreamError,
    UpstreamInvalid,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from chutes.proxy.proxy import Proxy

__all__ = [
    "ClientDisconnected",
    "Proxy",
    "UpstreamClosed",
    "UpstreamError",
    "UpstreamInvalid",
    "UpstreamTimeout",
    "UpstreamUnreachable",
]
