"""The SDK's embedding template, as its docs show it."""

from chutes.chute import NodeSelector
from chutes.chute.template.embedding import build_embedding_chute

chute = build_embedding_chute(
    username="MyUser",
    model_name="BAAI/bge-small-en-v1.5",
    revision="5c38ec7c405ec4b44b94cc5a9bb96e735b38267a",
    pooling_type="CLS",
    node_selector=NodeSelector(gpu_count=1),
)
