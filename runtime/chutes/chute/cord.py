"""`chutes.chute.cord`: where the SDK keeps `Cord`; the spec itself lives in `chutes.cord`."""

from __future__ import annotations

from chutes.cord import Cord, define_cord

__all__ = ["Cord", "define_cord"]
