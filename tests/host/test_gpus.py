"""The GPU inventory (NVML or declared), the placement function and the holdings built on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chutes.node_selector import NodeSelector
from chutes_host.scheduling.gpus import GpuSpecError, Inventory, gpu_env, load_inventory, read_nvml
from chutes_host.scheduling.holdings import Holder, Holdings
from chutes_host.scheduling.placement import explain, place

MACHINE = "4xNVIDIA A100-SXM4-80GB:80,2xNVIDIA L4:24"


def nvml_answers() -> bool:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def test_declared_devices_are_numbered_with_their_ids() -> None:
    inventory = load_inventory("2xNVIDIA A100-SXM4-80GB:80, NVIDIA L4:24 @ GPU-5c1f0e2a")
    assert [(g.index, g.uuid, g.name, g.label()) for g in inventory.gpus] == [
        (0, "0", "NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB 80 GB"),
        (1, "1", "NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB 80 GB"),
        (2, "GPU-5c1f0e2a", "NVIDIA L4", "NVIDIA L4 24 GB"),
    ]
    assert inventory.source == "--gpus (declared)"
    assert load_inventory("none").gpus == ()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("A100", "cannot read 'A100'"),
        ("A100:80,,L4:24", "cannot read ''"),
        ("0x A100:80", "needs a count of 1-256"),
        ("A100:0", "needs a count of 1-256 and a memory of 1-4096 GB"),
        ("2xA100:80@GPU-1", "gives one @ID to 2 devices"),
    ],
)
def test_bad_declarations_say_what_to_write(spec: str, message: str) -> None:
    with pytest.raises(GpuSpecError, match=message):
        load_inventory(spec)


@pytest.mark.skipif(nvml_answers(), reason="this machine has a working NVML; scripts/gpu-check covers it")
def test_without_nvml_the_host_has_zero_gpus_and_says_why() -> None:
    inventory = read_nvml()
    assert inventory.gpus == ()
    assert inventory.source == "NVML"
    assert "NVML" in inventory.note
    assert "only chutes with gpu_count=0 can be deployed" in inventory.summary()
    assert load_inventory(None) == inventory
    with pytest.raises(GpuSpecError, match=r"names GPU\(s\) \[0, 1\] that this machine does not have"):
        load_inventory("0,1")


def test_placement_by_count_memory_and_type() -> None:
    gpus = load_inventory(MACHINE).gpus
    # the smallest GPUs that fit, so large ones stay free for chutes that need them
    assert [g.index for g in place(NodeSelector(), gpus, ())] == [4]
    assert [g.index for g in place(NodeSelector(gpu_count=2, min_vram_gb_per_gpu=24), gpus, ())] == [4, 5]
    assert [g.index for g in place(NodeSelector(gpu_count=2, min_vram_gb_per_gpu=48), gpus, ())] == [0, 1]
    assert [g.index for g in place(NodeSelector(include=["a100"]), gpus, {"0", "1"})] == [2]
    assert [g.index for g in place(NodeSelector(exclude=["l4"]), gpus, ())] == [0]
    assert place(NodeSelector(gpu_count=0), gpus, ()) == ()
    assert place(NodeSelector(include=["h100"]), gpus, ()) is None
    assert place(NodeSelector(gpu_count=5, min_vram_gb_per_gpu=80), gpus, ()) is None
    assert place(NodeSelector(gpu_count=3, min_vram_gb_per_gpu=48), gpus, {"1", "2"}) is None


def test_placement_prefers_an_instances_own_gpus_and_avoids_others() -> None:
    gpus = load_inventory(MACHINE).gpus
    big = NodeSelector(min_vram_gb_per_gpu=48)
    assert [g.index for g in place(big, gpus, (), prefer=["3"])] == [3]
    assert [g.index for g in place(big, gpus, {"3"}, prefer=["3"])] == [0]
    assert [g.index for g in place(big, gpus, (), avoid={"0", "1"})] == [2]
    assert [g.index for g in place(big, gpus, {"2", "3"}, avoid={"0", "1"})] == [0]


def test_refusal_text_says_what_is_needed_free_and_busy() -> None:
    gpus = load_inventory("2xNVIDIA A100 80GB:80,NVIDIA L4:24").gpus
    text = explain(NodeSelector(gpu_count=2, min_vram_gb_per_gpu=48), gpus, {"0": "alice/llm", "1": "alice/llm"})
    assert text == "needs 2 GPUs with >= 48 GB; free: 1 x NVIDIA L4 24 GB; busy: 2 x NVIDIA A100 80GB 80 GB (alice/llm)"
    typed = explain(NodeSelector(include=["h100"], exclude=["l4"]), (), {})
    assert typed == "needs 1 GPU with >= 16 GB of type h100, not l4; free: none (this host has no GPUs)"


def test_holdings_refuse_422_when_never_and_409_when_busy(tmp_path: Path) -> None:
    holdings = Holdings(load_inventory("2xNVIDIA A100 80GB:80"), tmp_path / "gpus.json")
    big = NodeSelector(gpu_count=2, min_vram_gb_per_gpu=80)
    assert holdings.refusal(big, replacing="alice-llm") is None
    first, second = object(), object()
    assert [g.uuid for g in holdings.reserve(first, Holder("alice/llm", "alice-llm", 0), big)] == ["0", "1"]
    assert holdings.reserve(second, Holder("bob/other", "bob-other", 0), NodeSelector()) is None
    status, text = holdings.refusal(NodeSelector(), replacing="bob-other")
    assert status == 409
    assert "busy: 2 x NVIDIA A100 80GB 80 GB (alice/llm)" in text
    assert holdings.refusal(big, replacing="alice-llm") is None  # a redeploy may reuse its own GPUs
    status, text = holdings.refusal(NodeSelector(include=["h100"]), replacing="bob-other")
    assert status == 422
    assert text.startswith("this host can never run it: needs 1 GPU with >= 16 GB of type h100")
    assert (
        Holdings(Inventory((), "NVML", "no driver"))
        .refusal(NodeSelector(), replacing="x")[1]
        .endswith("a chute that needs no GPU can say NodeSelector(gpu_count=0)")
    )
    recorded = json.loads((tmp_path / "gpus.json").read_text())
    assert [g["holder"] for g in recorded["gpus"]] == ["alice-llm#0", "alice-llm#0"]
    assert recorded["pending"] == ["bob-other#0"]
    assert holdings.release(first) is True
    assert holdings.release(first) is False
    assert [g["holder"] for g in json.loads((tmp_path / "gpus.json").read_text())["gpus"]] == [None, None]


def test_a_restarted_host_gives_instances_their_recorded_gpus(tmp_path: Path) -> None:
    inventory = load_inventory("4xNVIDIA A100 80GB:80")
    before = Holdings(inventory, tmp_path / "gpus.json")
    one = NodeSelector()
    first = object()
    assert before.reserve(first, Holder("a/x", "a-x", 0), one)[0].uuid == "0"
    assert before.reserve(object(), Holder("b/y", "b-y", 0), one)[0].uuid == "1"
    assert before.release(first) is True  # a-x#0 is redeployed with two GPUs: now on 0 and 2
    assert [g.uuid for g in before.reserve(object(), Holder("a/x", "a-x", 0), NodeSelector(gpu_count=2))] == ["0", "2"]
    after = Holdings(inventory, tmp_path / "gpus.json")
    # b-y#0 comes back first, yet leaves a-x#0's GPUs alone; a-x#0 gets exactly its own again
    assert [g.uuid for g in after.reserve(object(), Holder("b/y", "b-y", 0), one)] == ["1"]
    assert [g.uuid for g in after.reserve(object(), Holder("c/z", "c-z", 0), one)] == ["3"]
    assert [g.uuid for g in after.reserve(object(), Holder("a/x", "a-x", 0), NodeSelector(gpu_count=2))] == ["0", "2"]


def test_instance_environment_names_only_its_gpus() -> None:
    gpus = load_inventory("NVIDIA L4:24@GPU-aaa,NVIDIA L4:24@GPU-bbb").gpus
    assert gpu_env(gpus) == {"CUDA_VISIBLE_DEVICES": "GPU-aaa,GPU-bbb", "NVIDIA_VISIBLE_DEVICES": "GPU-aaa,GPU-bbb"}
    assert gpu_env(()) == {"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": "void"}


class FakeNvml:
    """NVML's calls as pynvml spells them, answering for one plain GPU and one in MIG mode with two slices.

    This machine has no NVIDIA driver; scripts/gpu-check runs the same code against a real one.
    """

    NVML_DEVICE_MIG_ENABLE = 1

    class NVMLError(Exception):
        pass

    class Memory:
        def __init__(self, total: int, used: int = 0) -> None:
            self.total, self.used = total, used

    devices = {
        0: {"uuid": b"GPU-plain", "name": b"NVIDIA L4", "memory": 23034 * 1024**2, "mig": None},
        1: {"uuid": "GPU-parent", "name": "NVIDIA A100-SXM4-80GB", "memory": 81920 * 1024**2, "mig": 1},
    }
    slices = {
        (1, 0): {"uuid": "MIG-aaa", "name": "NVIDIA A100-SXM4-80GB MIG 3g.40gb", "memory": 40192 * 1024**2},
        (1, 2): {"uuid": "MIG-bbb", "name": "NVIDIA A100-SXM4-80GB MIG 2g.20gb", "memory": 19968 * 1024**2},
    }

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict:
        return self.devices[index]

    def nvmlDeviceGetMigMode(self, handle: dict) -> tuple[int, int]:
        if handle["mig"] is None:
            raise self.NVMLError("Not Supported")
        return handle["mig"], handle["mig"]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: dict) -> int:
        return 3

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: dict, slot: int) -> dict:
        index = next(i for i, d in self.devices.items() if d is handle)
        if (index, slot) not in self.slices:
            raise self.NVMLError("Not Found")
        return self.slices[(index, slot)]

    def nvmlDeviceGetName(self, handle: dict) -> str | bytes:
        return handle["name"]

    def nvmlDeviceGetUUID(self, handle: dict) -> str | bytes:
        return handle["uuid"]

    def nvmlDeviceGetMemoryInfo(self, handle: dict) -> Memory:
        return self.Memory(handle["memory"], used=handle["memory"] // 4)


def test_nvml_devices_and_mig_slices_become_the_inventory() -> None:
    from chutes_host.scheduling.gpus import _nvml_devices

    gpus = list(_nvml_devices(FakeNvml()))
    assert [(g.index, g.uuid, g.name, g.label(), g.mig) for g in gpus] == [
        (0, "GPU-plain", "NVIDIA L4", "NVIDIA L4 24 GB", None),
        (1, "MIG-aaa", "NVIDIA A100-SXM4-80GB MIG 3g.40gb", "NVIDIA A100-SXM4-80GB MIG 3g.40gb 42 GB", True),
        (1, "MIG-bbb", "NVIDIA A100-SXM4-80GB MIG 2g.20gb", "NVIDIA A100-SXM4-80GB MIG 2g.20gb 21 GB", True),
    ]
    # a slice is placed like a GPU, and a chute asking for "a100" may get one
    assert [g.uuid for g in place(NodeSelector(include=["a100"], min_vram_gb_per_gpu=40), gpus, ())] == ["MIG-aaa"]
