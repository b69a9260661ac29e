"""The SDK's SGLang template, as its docs show it."""

from chutes.chute import NodeSelector
from chutes.chute.template.sglang import build_sglang_chute

chute = build_sglang_chute(
    username="MyUser",
    model_name="Qwen/Qwen2.5-0.5B-Instruct",
    revision="7ae557604adf67be50417f59c2c2f167def9a775",
    engine_args="--context-length 4096",
    node_selector=NodeSelector(gpu_count=1),
)
