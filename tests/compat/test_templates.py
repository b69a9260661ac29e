"""The templates at the SDK's paths: their cords, their engines' command lines, and their images (golden text).

Set CHUTES_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from chutes.chute import ChutePack
from chutes.chute.template.engine import EngineProcess
from chutes.chute.template.sglang import sglang_command
from chutes.chute.template.vllm import build_vllm_chute, vllm_command
from chutes.loader import load_chute
from chutes_build.plan import plan_build
from tests.cli.conftest import CHUTES
from tests.compat.test_sdk_chutes import load

HERE = Path(__file__).parent


def test_the_vllm_template_serves_the_openai_routes_as_the_sdk_does() -> None:
    chute = load("sdk_vllm")
    assert chute.slug == "myuser-unsloth-llama-3-2-1b-instruct" and chute.name == "unsloth/Llama-3.2-1B-Instruct"
    routes = sorted((c.method, c.path, c.stream, c.alias) for c in chute.cords)
    assert routes == [
        ("GET", "/v1/models", False, None),
        ("POST", "/detokenize", False, "/do_detokenize"),
        ("POST", "/tokenize", False, "/do_tokenize"),
        ("POST", "/v1/chat/completions", False, None),
        ("POST", "/v1/chat/completions", True, None),
        ("POST", "/v1/completions", False, None),
        ("POST", "/v1/completions", True, None),
    ]
    assert {c.passthrough_port for c in chute.cords} == {10101}
    assert chute.upstream_ports() == [10101]
    manifest = chute.manifest()
    assert (manifest["standard_template"], manifest["revision"]) == ("vllm", "9b58d4a36161a1e49ecf0a69d20b2736fef8e438")
    assert manifest["concurrency"] == 8


def test_engine_command_lines() -> None:
    assert vllm_command("org/M", 10101, "abc", "--max-model-len 4096") == [
        "python", "-m", "vllm.entrypoints.openai.api_server", "--model", "org/M", "--served-model-name", "org/M",
        "--host", "127.0.0.1", "--port", "10101", "--revision", "abc", "--max-model-len", "4096",
    ]  # fmt: skip
    sglang = load("sdk_sglang")
    embedding = load("sdk_embedding")
    assert [c.path for c in sglang.cords] == ["/v1/chat/completions"] * 2 + ["/v1/completions"] * 2 + ["/v1/models"]
    assert [c.path for c in embedding.cords] == ["/v1/embeddings", "/v1/models"]
    with pytest.raises(ValueError, match=r"build_vllm_chute\(revision=...\)"):
        vllm_command("org/M", 1, None, "--revision abc")
    with pytest.raises(ValueError, match="pooling_type 'max' is not one of"):
        from chutes.chute.template.embedding import embedding_command

        embedding_command("org/M", 1, pooling_type="max")


def test_engine_args_as_a_dict_become_flags_with_their_values() -> None:
    args = {"max_model_len": 4096, "enforce_eager": True, "trust_remote_code": False, "quantization": None}
    args |= {"limit_mm_per_prompt": {"image": 2}, "--tensor-parallel-size": 2, "allowed_origins": ["a", "b"]}
    assert vllm_command("org/M", 10101, "abc", args)[11:] == [
        "--revision", "abc", "--max-model-len", "4096", "--enforce-eager",
        "--limit-mm-per-prompt", '{"image": 2}', "--tensor-parallel-size", "2", "--allowed-origins", "a", "b",
    ]  # fmt: skip
    for builder in (vllm_command, sglang_command):
        with pytest.raises(ValueError, match=r"\(revision=...\), not in engine_args"):
            builder("org/M", 1, None, {"revision": "abc"})
    with pytest.raises(ValueError, match="engine_args key 'max model len' is not an engine option name"):
        vllm_command("org/M", 1, None, {"max model len": 1})


def test_the_diffusion_template_validates_before_it_loads_anything() -> None:
    chute = load("sdk_diffusion")
    (cord,) = chute.cords
    assert (cord.path, cord.output_content_type, chute.slug) == ("/generate", "image/jpeg", "myuser-sdxl-turbo")
    assert chute.revision == "71153311d3dbb46851df1931d3ca6e939de83304"
    assert cord.binding.bind(b'{"prompt": "a cat", "width": 512}', b"")["params"].width == 512
    with pytest.raises(ValueError, match="multiple_of|multiple of"):
        cord.binding.bind(b'{"prompt": "a cat", "width": 500}', b"")


def test_a_pack_is_what_chutes_run_and_deploy_load() -> None:
    pack = build_vllm_chute("me", "org/M", {"gpu_count": 1})
    assert isinstance(pack, ChutePack) and pack.chat is not None and pack.chat_stream is not None
    assert load_chute(f"{HERE / 'chutes' / 'sdk_vllm.py'}:chute").slug == "myuser-unsloth-llama-3-2-1b-instruct"


async def test_an_engine_that_exits_fails_startup_naming_it() -> None:
    engine = EngineProcess(["python", "-c", "import sys; sys.exit(3)"], port=1)
    with pytest.raises(RuntimeError, match="the engine exited with code 3 before it was ready"):
        await engine.start()


def check_golden(name: str, text: str) -> None:
    path = HERE / "golden" / name
    if os.environ.get("CHUTES_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the golden file"


@pytest.mark.parametrize(
    ("fixture", "requirement"), [("sdk_vllm", "vllm==0.10.1.1"), ("sdk_sglang", "sglang[srt]==0.5.2")]
)
def test_gpu_engine_images_render_as_golden_text(fixture: str, requirement: str, tmp_path: Path) -> None:
    shutil.copy(HERE / "chutes" / f"{fixture}.py", tmp_path / f"{fixture}.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTES_")}
    out = subprocess.run(
        [CHUTES, "build", f"{fixture}.py:chute", "--dry-run", "--local", "--wait"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    check_golden(f"{fixture}.Dockerfile", out.stdout.split("\n# build context")[0])
    ref = f"{HERE / 'chutes' / fixture}.py:chute"
    plan = plan_build(load_chute(ref), ref, fetch_wheels=False)
    assert plan.context.generated[".chutes/wheels/pip-1/requirements.txt"] == f"{requirement}\n".encode()


def test_build_says_once_what_is_ignored_here(tmp_path: Path) -> None:
    shutil.copy(HERE / "chutes" / "sdk_basic.py", tmp_path / "sdk_basic.py")
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "af.txt").write_text("voice")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTES_")}
    out = subprocess.run(
        [CHUTES, "build", "sdk_basic.py:chute", "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("Note: ignored here: tee=True") == 1
    assert "Note: ignored here: node_selector keys this host does not know were ignored: gpu_typo" in out.stderr
    assert 'COPY --chown=1000:1000 --chmod=644 ["app/voices", "/app/voices"]' in out.stdout
    assert "LABEL maintainer=" in out.stdout and "apt-get remove -y --purge git" in out.stdout
    assert out.stdout.startswith("# Generated") and "FROM python:3.12-slim\n" in out.stdout
