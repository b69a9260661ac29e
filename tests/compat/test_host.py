"""An SDK-style chute deployed to a real host: its folded slug, and the template shapes through the gateway."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from tests.host.conftest import host_factory  # noqa: F401

HERE = Path(__file__).parent


def test_sdk_names_and_a_stream_pair_through_the_gateway(host_factory, tmp_path: Path) -> None:  # noqa: F811
    host = host_factory("--health-interval", "0.5")
    key = host.add_user("myuser")  # the chute says username="MyUser"
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(HERE / "chutes" / "sdk_llm_shapes.py", project / "llm_shapes.py")
    deployed = host.cli("deploy", "llm_shapes:chute", key=key, cwd=project)
    assert deployed.returncode == 0, deployed.stderr + host.log_text()[-3000:]
    slug = "myuser-unsloth-llama-3-2-1b-instruct"
    assert deployed.stdout.strip() == f"http://{slug}.localhost:{host.port}"
    assert f"uploading {slug}" in deployed.stderr
    assert deployed.stderr.count("ignored here: tee=True asks the platform for a confidential-computing node") == 1
    body = {"messages": [{"role": "user", "content": "hello there"}]}
    plain = host.call(slug, "/v1/chat/completions", key=key, json=body)
    assert plain.json() == {"choices": [{"message": {"content": "HELLO THERE"}}]}
    headers = {"Host": f"{slug}.localhost:{host.port}", "Authorization": f"Bearer {key}"}
    with httpx.stream(
        "POST", f"{host.url}/v1/chat/completions", json={**body, "stream": True}, headers=headers, timeout=30
    ) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        frames = [json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: ")]
    assert [f["choices"][0]["delta"]["content"] for f in frames] == ["hello", "there"]
    assert host.call(slug, "/do_tokenize", key=key, json={"prompt": "a b"}).json() == {"tokens": ["a", "b"]}
    listed = host.cli("chutes", "list", "--limit", "1", key=key)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.strip().splitlines()) == 1 and slug in listed.stdout
