"""Ready-made chutes for common engines, at the SDK's paths (`chutes.chute.template.vllm` and the others)."""

from __future__ import annotations

from chutes.chute.template.vllm import build_vllm_chute

__all__ = ["build_vllm_chute"]
