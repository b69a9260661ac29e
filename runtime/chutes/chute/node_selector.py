"""`chutes.chute.node_selector`: where the SDK keeps `NodeSelector`; it lives in `chutes.node_selector`."""

from __future__ import annotations

from chutes.node_selector import NodeSelector

__all__ = ["NodeSelector"]
