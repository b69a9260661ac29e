"""Images that install the engines the templates run, at the SDK's paths (`chutes.image.standard.vllm`)."""

from __future__ import annotations

from chutes.image.standard.vllm import VLLM

__all__ = ["VLLM"]
