"""Every Python example in docs/cords.md runs, and makes the calls its `# call:` lines name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chutes.testing import client
from tests.conftest import free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "cords.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
CALL = re.compile(r"# call: (GET|POST|PUT|DELETE) (\S+)(?: (.+))? -> (\d{3})")


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 7
    assert all(CALL.search(block) for block in BLOCKS)


@pytest.mark.parametrize("source", BLOCKS, ids=[f"example-{i}" for i in range(len(BLOCKS))])
async def test_example(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_PORT", str(free_port()))  # the passthrough example's model server
    namespace: dict = {}
    exec(compile(source, str(DOC), "exec", dont_inherit=True), namespace)
    async with client(namespace["chute"]) as c:
        for method, path, body, status in CALL.findall(source):
            payload = json.loads(body) if body else None
            response = await c.request(method, path, json=payload)
            assert response.status_code == int(status), (method, path, response.text)
        if "test_hello" in namespace:
            await namespace["test_hello"]()
