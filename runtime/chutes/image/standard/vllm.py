"""`VLLM`: the image the vLLM and embedding templates run in (the default CUDA base, plus vLLM)."""

from __future__ import annotations

from chutes.image.base import Image

VLLM_VERSION = "0.10.1.1"
VLLM = Image("chutes", "vllm", VLLM_VERSION, readme="vLLM's OpenAI-compatible server").pip_install(
    [f"vllm=={VLLM_VERSION}"]
)

__all__ = ["VLLM", "VLLM_VERSION"]
