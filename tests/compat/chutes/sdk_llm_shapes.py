"""The cord shapes of the SDK's LLM templates, on a chute with its own (non-engine) cords."""

from chutes.chute import Chute, NodeSelector

chute = Chute(
    username="MyUser",
    name="unsloth/Llama-3.2-1B-Instruct",
    image="chutes/vllm:nightly",
    node_selector=NodeSelector(gpu_count=0),
    tee=True,
)


@chute.cord(path="/chat_stream", public_api_path="/v1/chat/completions", stream=True)
async def chat_stream(self, data: dict):
    for word in data["messages"][-1]["content"].split():
        yield {"choices": [{"delta": {"content": word}}]}


@chute.cord(path="/chat", public_api_path="/v1/chat/completions")
async def chat(self, data: dict) -> dict:
    return {"choices": [{"message": {"content": data["messages"][-1]["content"].upper()}}]}


@chute.cord(path="do_tokenize", public_api_path="/tokenize")
async def do_tokenize(self, data: dict) -> dict:
    return {"tokens": data["prompt"].split()}
