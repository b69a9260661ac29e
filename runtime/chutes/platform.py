"""The Chutes platform's SDK features that mean nothing on a self-hosted host, and why."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chutes.chute import Chute

# The platform's prebuilt engine images, which run its own SDK rather than this runtime.
PLATFORM_IMAGE = re.compile(r"(?:docker\.io/)?(?:chutes|parachutes)/(vllm|sglang|diffusion)(?::[\w][\w.-]{0,127})?")
STANDARD = {
    "vllm": ("chutes.image.standard.vllm", "VLLM", "VLLM_VERSION", "vllm"),
    "sglang": ("chutes.image.standard.sglang", "SGLANG", "SGLANG_VERSION", "sglang"),
    "diffusion": ("chutes.image.standard.diffusion", "DIFFUSION", "DIFFUSERS_VERSION", "diffusers"),
}

WHY = {
    "tee": "tee=True asks the platform for a confidential-computing node; this host runs the chute as any other",
    "encrypted_fs": "encrypted_fs=True asks the platform to encrypt the chute's files; this host stores them as usual "
    "(encrypt the host's disk to get that)",
    "lock_modules": "lock_modules is the platform's guard against changed Python modules; this host does not check it",
}


def platform_notes(chute: Chute) -> list[str]:
    """Takes a chute, and returns one line per platform-only feature it asks for that is ignored here."""
    notes = [WHY[key] for key, value in chute.platform.items() if value]
    if chute.image_note:
        notes.append(chute.image_note)
    selector = chute.node_selector
    if selector.max_hourly_price_per_gpu is not None:
        notes.append("node_selector max_hourly_price_per_gpu is a platform fee limit; this host charges nothing")
    if selector.ignored_keys:
        keys = ", ".join(selector.ignored_keys)
        notes.append(f"node_selector keys this host does not know were ignored: {keys} (a typo?)")
    return notes


def standard_image(ref: str) -> tuple[Any, str] | None:
    """Takes an image name; for one of the platform's prebuilt engine images (`chutes/vllm:...`), returns
    this project's standard image of that engine and a note saying so, else None."""
    match = PLATFORM_IMAGE.fullmatch(ref.strip())
    if match is None:
        return None
    import importlib

    module_name, attr, version_attr, package = STANDARD[match.group(1)]
    module = importlib.import_module(module_name)
    image = getattr(module, attr)
    note = (
        f"image {ref!r} is the platform's prebuilt image, which runs its own SDK: here the chute is built on "
        f"this project's {attr} image ({package}=={getattr(module, version_attr)} on the default CUDA base); "
        f"write image={attr} (from {module_name} import {attr}) to say so"
    )
    return image, note
