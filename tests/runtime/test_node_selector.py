"""NodeSelector: CPU chutes (gpu_count=0) and GPU type names as users write them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chutes.chute import Chute, NodeSelector
from chutes.node_selector import gpu_type_matches


@pytest.mark.parametrize(
    ("wanted", "device", "matches"),
    [
        ("a100", "NVIDIA A100-SXM4-80GB", True),
        ("a100", "NVIDIA A100 80GB PCIe", True),
        ("a10", "NVIDIA A100-SXM4-80GB", False),
        ("a10", "NVIDIA A10", True),
        ("a100_80gb", "NVIDIA A100 80GB PCIe", True),
        ("a100-40gb", "NVIDIA A100 80GB PCIe", False),
        ("h100", "NVIDIA H100 80GB HBM3", True),
        ("h100_sxm", "NVIDIA H100 80GB HBM3", False),
        ("l40s", "NVIDIA L40S", True),
        ("l40", "NVIDIA L40S", False),
        ("rtx4090", "NVIDIA GeForce RTX 4090", True),
        ("4090", "NVIDIA GeForce RTX 4090", True),
        ("NVIDIA L4", "NVIDIA L4", True),
        ("l4", "NVIDIA L40S", False),
        ("a6000", "NVIDIA RTX A6000", True),
        ("nvidia", "NVIDIA L4", False),
    ],
)
def test_gpu_types_match_device_names_word_by_word(wanted: str, device: str, matches: bool) -> None:
    assert gpu_type_matches(wanted, device) is matches


def test_include_and_exclude_decide_which_devices_a_chute_accepts() -> None:
    selector = NodeSelector(include=[" A100 ", "h100"], exclude=["pcie"])
    assert selector.include == ["a100", "h100"]
    assert selector.accepts("NVIDIA A100-SXM4-80GB")
    assert selector.accepts("NVIDIA H100 80GB HBM3")
    assert not selector.accepts("NVIDIA A100 80GB PCIe")
    assert not selector.accepts("NVIDIA L4")
    assert NodeSelector(exclude=["l4"]).accepts("NVIDIA L40S")


def test_gpu_count_zero_is_a_cpu_chute() -> None:
    chute = Chute(username="tests", name="cpu", image="tests/cpu", node_selector=NodeSelector(gpu_count=0))
    assert chute.node_selector.is_cpu
    assert chute.manifest()["node_selector"]["gpu_count"] == 0
    assert not NodeSelector().is_cpu


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gpu_count": 0, "include": ["a100"]}, "gpu_count=0 asks for no GPU"),
        ({"include": ["A100;rm"]}, "GPU type names look like"),
        ({"exclude": [""]}, "GPU type names look like"),
        ({"gpu_count": -1}, "greater than or equal to 0"),
    ],
)
def test_bad_selectors_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NodeSelector(**options)
