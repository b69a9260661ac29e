"""examples/gpu_model as its docstring runs it: a declared GPU, a secret from stdin, scale to zero and wake-up."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.host.conftest import CHUTES, cli_env, host_factory, wait_for  # noqa: F401

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gpu_model"
GPU = "GPU-example-l4"


def test_the_gpu_example_is_placed_given_its_secret_and_scaled_to_zero(host_factory, tmp_path: Path) -> None:  # noqa: F811
    host = host_factory("--gpus", f"NVIDIA L4:24@{GPU}", "--health-interval", "0.3")
    key = host.add_user("myuser")
    project = tmp_path / "gpu_model"
    shutil.copytree(EXAMPLE, project)
    # a short idle time, so the test sees the chute go cold and wake up again
    source = (project / "gpu_model.py").read_text().replace("shutdown_after_seconds=120", "shutdown_after_seconds=2")
    (project / "gpu_model.py").write_text(source)

    secret = subprocess.run(
        [CHUTES, "secrets", "set", "HF_TOKEN", "-", "--chute", "gpu-model"],
        input="hf_example_token\n",
        env=cli_env(host.home, CHUTES_API_URL=host.url, CHUTES_API_KEY=key),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert secret.returncode == 0, secret.stderr
    deployed = host.cli("deploy", "gpu_model:chute", key=key, cwd=project)
    assert deployed.returncode == 0, deployed.stderr + host.log_text()[-3000:]

    answer = host.call("myuser-gpu-model", "/whoami", key=key, method="GET")
    assert answer.json() == {"gpu": GPU, "token_given": True}

    def phase() -> str:
        return host.api("GET", "/chutes/gpu-model", key=key).json()["phase"]

    wait_for(lambda: phase() == "cold", timeout=60, what="the idle chute to scale to zero", host=host)

    def gpu_free() -> bool:  # once the instance has stopped, its GPU is free for others
        listed = host.cli("host", "gpus", "--data-dir", str(host.data_dir), key=key)
        return listed.returncode == 0 and listed.stdout.rstrip().endswith("\tfree")

    wait_for(gpu_free, timeout=30, what="the cold chute's GPU to be free", host=host)
    woken = host.call("myuser-gpu-model", "/whoami", key=key, method="GET", timeout=60)  # waits, never 503
    assert woken.status_code == 200 and woken.json() == {"gpu": GPU, "token_given": True}
