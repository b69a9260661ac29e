"""The SDK's vLLM template, as its docs show it."""

from chutes.chute import NodeSelector
from chutes.chute.template.vllm import build_vllm_chute
from chutes.image.standard.vllm import VLLM

chute = build_vllm_chute(
    username="MyUser",
    readme="## Llama 3.2 1B Instruct",
    model_name="unsloth/Llama-3.2-1B-Instruct",
    image=VLLM,
    concurrency=8,
    revision="9b58d4a36161a1e49ecf0a69d20b2736fef8e438",
    engine_args="--max-model-len 8192 --gpu-memory-utilization 0.9",
    node_selector=NodeSelector(gpu_count=1, min_vram_gb_per_gpu=24, include=["a100", "l40s"]),
)
