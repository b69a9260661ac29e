"""`chutes.exception`: the SDK's exception names, all part of the tree in `chutes.exceptions`."""

from __future__ import annotations

from chutes.exceptions import (
    AuthenticationRequired,
    ChutesError,
    DuplicatePath,
    InvalidPath,
    NotConfigured,
    StillProvisioning,
)

__all__ = [
    "AuthenticationRequired",
    "ChutesError",
    "DuplicatePath",
    "InvalidPath",
    "NotConfigured",
    "StillProvisioning",
]
