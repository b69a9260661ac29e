"""How the kubernetes executor reads a pod's state (the phase users see, and what fails a deploy)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightkube")

from lightkube.models.core_v1 import (
    ContainerState,
    ContainerStateTerminated,
    ContainerStateWaiting,
    ContainerStatus,
    PodCondition,
    PodSpec,
    PodStatus,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Pod as PodObject

from chutes_host.executors.kubernetes import Pod, _read_pod


def read(reason: str, message: str, restarts: int) -> Pod:
    """Reads a scheduled pod whose one container waits with `reason`, after `restarts` restarts."""
    waiting = ContainerState(waiting=ContainerStateWaiting(reason=reason, message=message))
    last = ContainerState(terminated=ContainerStateTerminated(exitCode=3)) if restarts else None
    container = ContainerStatus(
        name="chute", image="i", imageID="", ready=False, restartCount=restarts, state=waiting, lastState=last
    )
    obj = PodObject(
        metadata=ObjectMeta(name="chute-alice-x-1", labels={}),
        spec=PodSpec(containers=[], nodeName="n1"),
        status=PodStatus(
            podIP="10.202.1.5",
            conditions=[PodCondition(type="PodScheduled", status="True")],
            containerStatuses=[container],
        ),
    )
    pod = Pod(index=0, log_path=Path("/nonexistent"), pod="chute-alice-x-1")
    _read_pod(pod, obj)
    return pod


def test_a_container_the_kubelet_cannot_create_fails_to_start() -> None:
    pod = read("CreateContainerError", "no such volume", restarts=0)
    assert (pod.phase, pod.waiting) == ("failed-to-start", "CreateContainerError: no such volume")


def test_a_container_that_crashed_and_cannot_be_recreated_is_still_crash_looping() -> None:
    """A restart the kubelet fails to make is part of the crash loop: the deploy then reports the loop and
    the container's own last log lines, not only the kubelet's error."""
    pod = read("CreateContainerError", "timed out waiting for the condition", restarts=2)
    assert pod.phase == "crash-looping"
    assert pod.waiting == (
        "restarted 2 time(s), last exit code 3, then CreateContainerError: timed out waiting for the condition"
    )


def test_crash_loop_back_off_is_crash_looping() -> None:
    pod = read("CrashLoopBackOff", "back-off 10s restarting failed container", restarts=1)
    assert (pod.phase, pod.waiting) == ("crash-looping", "restarted 1 time(s), last exit code 3")
