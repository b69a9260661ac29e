"""`LLAMA_CPP`: the image the llama.cpp template runs in (llama-cpp-python's server, CPU build)."""

from __future__ import annotations

from chutes.image.base import Image

LLAMA_CPP_VERSION = "0.3.36"
LLAMA_CPP = Image(
    "chutes", "llama-cpp", LLAMA_CPP_VERSION, readme="llama-cpp-python's OpenAI-compatible server"
).pip_install([f"llama-cpp-python[server]=={LLAMA_CPP_VERSION}"])

__all__ = ["LLAMA_CPP", "LLAMA_CPP_VERSION"]
