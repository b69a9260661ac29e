"""An OpenAI-compatible engine (vLLM, SGLang, llama.cpp) run beside the chute: started, awaited, stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from chutes.lifecycle import seconds_from_env

logger = logging.getLogger("chutes.engine")
ENGINE_TIMEOUT_ENV = "CHUTES_ENGINE_TIMEOUT"
DEFAULT_ENGINE_TIMEOUT = 1800.0  # a large model's first load reads tens of GB from disk
POLL = 0.5
FLAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class EngineProcess:
    """The engine's process: `start()` launches it and returns once `GET {ready_path}` answers 200.

    engine = EngineProcess(["python", "-m", "vllm.entrypoints.openai.api_server", ...], port=10101)
    """

    def __init__(self, command: Sequence[str], *, port: int, ready_path: str = "/v1/models") -> None:
        self.command = list(command)
        self.port = port
        self.ready_path = ready_path
        self.process: asyncio.subprocess.Process | None = None

    def __repr__(self) -> str:
        return f"EngineProcess({shlex.join(self.command)!r}, port={self.port})"

    async def start(self) -> None:
        """Launches the engine, and returns when it is ready; raises RuntimeError if it exits or never answers."""
        timeout = engine_timeout()
        logger.info("starting the engine: %s", shlex.join(self.command))
        # "python" is this interpreter: the engine is installed beside the chute, whatever PATH says
        command = [sys.executable, *self.command[1:]] if self.command[0] == "python" else self.command
        self.process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL)
        url = f"http://127.0.0.1:{self.port}{self.ready_path}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(
                        f"the engine exited with code {self.process.returncode} before it was ready "
                        f"(its output is in this chute's log above): {shlex.join(self.command)}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        logger.info("the engine is ready on 127.0.0.1:%d", self.port)
                        return
                if loop.time() >= deadline:
                    await self.stop()
                    raise RuntimeError(
                        f"the engine did not answer GET {url} within {timeout:g} s; allow it longer "
                        f"with {ENGINE_TIMEOUT_ENV}=SECONDS"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.process.wait(), POLL)

    async def stop(self) -> None:
        """Stops the engine: SIGTERM, then SIGKILL after 15 s."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


def engine_timeout() -> float:
    """Returns how long to wait for the engine ($CHUTES_ENGINE_TIMEOUT seconds, 1800 by default)."""
    return seconds_from_env(ENGINE_TIMEOUT_ENV, DEFAULT_ENGINE_TIMEOUT, example=3600)


def split_engine_args(engine_args: str | Sequence[str] | Mapping[str, Any] | None) -> list[str]:
    """Takes engine arguments as a shell-like string, a list or a dict, and returns them as a list.

    A dict, as the SDK's reference shows them, becomes flags: `{"max_model_len": 4096}` is
    `--max-model-len 4096`, True is the bare flag, False and None are left out, a list gives each
    item after the flag, and a dict value is passed as JSON.
    """
    if engine_args is None:
        return []
    if isinstance(engine_args, str):
        return shlex.split(engine_args)
    if isinstance(engine_args, Mapping):
        return flags_from_dict(engine_args)
    return [str(a) for a in engine_args]


def flags_from_dict(engine_args: Mapping[str, Any]) -> list[str]:
    """Takes `{"max_model_len": 4096, "enforce_eager": True}`, and returns the flags
    `["--max-model-len", "4096", "--enforce-eager"]`."""
    flags: list[str] = []
    for key, value in engine_args.items():
        if not isinstance(key, str) or not FLAG_NAME.fullmatch(key.lstrip("-")):
            raise ValueError(
                f"engine_args key {key!r} is not an engine option name; use names like 'max_model_len' "
                "(they become '--max-model-len')"
            )
        flag = "--" + key.lstrip("-").replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            flags.append(flag)
        elif isinstance(value, list | tuple):
            flags += [flag, *(str(v) for v in value)]
        elif isinstance(value, dict):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return flags
