"""A chute on the platform's prebuilt vLLM image, with cords of its own (a GPU chute)."""

from chutes.chute import Chute, NodeSelector

chute = Chute(
    username="myuser",
    name="prebuilt-vllm",
    image="chutes/vllm:0.9.2",
    node_selector=NodeSelector(gpu_count=1, min_vram_gb_per_gpu=24),
)


@chute.cord(public_api_path="/ping")
async def ping(self) -> dict:
    return {"pong": True}
