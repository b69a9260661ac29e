"""with_python("3.11") on a CUDA base without Python: the SDK compiles Python; here the base must have it."""

from chutes.chute import Chute, NodeSelector
from chutes.image import Image

image = (
    Image(username="myuser", name="cuda-python", tag="0.1")
    .from_base("nvidia/cuda:12.4.1-runtime-ubuntu22.04")
    .with_python("3.11")
    .apt_install(["libgl1"])
)
chute = Chute(
    username="myuser",
    name="cuda-python",
    image=image,
    node_selector=NodeSelector(gpu_count=1, min_vram_gb_per_gpu=16),
)


@chute.cord(public_api_path="/hello")
async def hello(self) -> dict:
    return {"hello": "gpu"}
