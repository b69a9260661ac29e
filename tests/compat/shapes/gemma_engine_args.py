"""The vLLM template with engine_args as a dict, as the SDK reference shows them (a GPU chute)."""

from chutes.chute import NodeSelector
from chutes.chute.template.vllm import build_vllm_chute

chute = build_vllm_chute(
    username="myuser",
    model_name="google/gemma-3-1b-it",
    revision="dcc83ea841ab6100d6b47a070329e1ba4cf78752",
    node_selector=NodeSelector(gpu_count=1, min_vram_gb_per_gpu=24),
    engine_args={"max_model_len": 8192, "enforce_eager": True, "trust_remote_code": False},
)
