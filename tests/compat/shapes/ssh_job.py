"""A chute whose only entry point is a job, written as the SDK writes jobs: ssh=True and **job_data."""

import os

from chutes.chute import Chute, NodeSelector
from chutes.image import Image

image = Image(username="myuser", name="ssh-job", tag="0.1").from_base("python:3.11-slim")
chute = Chute(username="myuser", name="ssh-job", image=image, node_selector=NodeSelector(gpu_count=0))


@chute.job(ssh=True, timeout=600)
async def train(self, **job_data) -> dict:
    steps = int(job_data.get("steps", 1))
    with open(os.path.join(job_data["output_dir"], "log.txt"), "w") as f:
        f.write("".join(f"step {n}\n" for n in range(steps)))
    return {"steps": steps}
