"""The public names for defining a chute, at the same import paths as the Chutes platform's SDK."""

from __future__ import annotations

from chutes.chute.base import NAME_PATTERN, Chute, ChutePack
from chutes.cord import Cord
from chutes.job import Job, Port
from chutes.node_selector import NodeSelector

__all__ = ["Chute", "ChutePack", "Cord", "Job", "NodeSelector", "Port", "NAME_PATTERN"]
