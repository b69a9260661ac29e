"""A robotics policy chute as third-party repositories write it: a username with '-', a dict of observations."""

from chutes.chute import Chute, NodeSelector
from chutes.image import Image

image = (
    Image(username="your-username", name="robot-policy", tag="0.1")
    .from_base("python:3.11-slim")
    .with_env("POLICY_NAME", "reach")
)
chute = Chute(
    username="your-username",
    name="robot-policy",
    image=image,
    node_selector=NodeSelector(gpu_count=0),
)


@chute.on_startup()
async def load_policy(self) -> None:
    self.gain = 0.5


@chute.cord(public_api_path="/act")
async def act(self, observation: dict) -> dict:
    joints = observation.get("joints", [])
    return {"action": [-self.gain * j for j in joints]}
