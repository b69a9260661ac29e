"""A GPU chute as a host runs it: placed on a GPU that fits, given a secret, scaled to zero when idle.

Deploy it to a host with a GPU of 16 GB or more (or one declared with `chutes host serve --gpus
'NVIDIA L4:24'`), give it its token, and call it:

    chutes secrets set HF_TOKEN - --chute gpu-model   # the value from stdin, never in a URL or a log
    chutes deploy gpu_model:chute
    chutes invoke /whoami --chute myuser/gpu-model

After `shutdown_after_seconds` without a request its instance stops and its GPU is free again; the
next request starts it and waits for it rather than failing.
"""

from __future__ import annotations

import os

from chutes.chute import Chute, NodeSelector

chute = Chute(
    username="myuser",
    name="gpu-model",
    image="myuser/gpu-model:0.1",
    node_selector=NodeSelector(gpu_count=1, min_vram_gb_per_gpu=16, include=["l4", "a100", "h100"]),
    shutdown_after_seconds=120,  # scale to zero after two idle minutes
    max_instances=2,  # and up to two instances (two GPUs) under load
    concurrency=4,
)


@chute.on_startup()
async def load_model(self) -> None:
    # A real chute would load weights onto its GPU here, with the token it was given.
    self.token_given = bool(os.environ.get("HF_TOKEN"))


@chute.cord(public_api_path="/whoami", method="GET")
async def whoami(self) -> dict:
    """Says which GPU this instance was given (by UUID) and whether its secret reached it."""
    return {"gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "token_given": self.token_given}
