"""`DIFFUSION`: the image the diffusion template runs in (the default CUDA base, plus diffusers and torch)."""

from __future__ import annotations

from chutes.image.base import Image

DIFFUSERS_VERSION = "0.34.0"
DIFFUSION = Image("chutes", "diffusion", DIFFUSERS_VERSION, readme="diffusers text-to-image pipelines").pip_install(
    [f"diffusers=={DIFFUSERS_VERSION}", "torch>=2.4", "transformers>=4.44", "accelerate>=0.33", "safetensors>=0.4"]
)

__all__ = ["DIFFUSION", "DIFFUSERS_VERSION"]
