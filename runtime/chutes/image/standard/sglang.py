"""`SGLANG`: the image the SGLang template runs in (the default CUDA base, plus SGLang)."""

from __future__ import annotations

from chutes.image.base import Image

SGLANG_VERSION = "0.5.2"
SGLANG = Image("chutes", "sglang", SGLANG_VERSION, readme="SGLang's OpenAI-compatible server").pip_install(
    [f"sglang[srt]=={SGLANG_VERSION}"]
)

__all__ = ["SGLANG", "SGLANG_VERSION"]
