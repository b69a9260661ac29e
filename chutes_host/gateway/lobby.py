"""The lobby: where the gateway holds a request briefly, until a waking chute is ready or an instance is free."""

from __future__ import annotations

import time

from chutes_host.executors.base import InstanceHandle
from chutes_host.observability.live import LiveDeployment
from chutes_host.scheduling.supervisor import Supervisor

WAKES = ("cold", "starting")  # phases worth waiting out; pending waits for GPUs, which may take hours


class Lobby:
    """Holds requests the gateway cannot forward at once, bounded in time and in count (the host's policy)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.policy = supervisor.policy

    def without_waiting(self, dep: LiveDeployment, chosen: InstanceHandle) -> InstanceHandle | None:
        """Takes the full instance round robin chose, and returns the one to forward to at once: another
        with room, or this one when no other is on its way (a full instance answers 429 itself); None when
        the request should wait in the lobby for one."""
        free = dep.free_instance()
        if free is not None or not _more_coming(dep):
            return free or chosen
        return None

    async def admit(self, slug: str, dep: LiveDeployment, chosen: InstanceHandle | None) -> InstanceHandle | None:
        """Takes the instance round robin chose (None: none is ready; else it is full), and returns the one
        to forward the request to, or None when the chute has no ready instance (the gateway answers 503)."""
        if chosen is not None:
            found = self.without_waiting(dep, chosen)
            if found is not None:
                return found
            timeout = self.policy.queue_timeout
        elif dep.phase in WAKES:
            timeout = self.policy.wake_timeout
            self.supervisor.wake(slug)  # even when the lobby is full, so a later retry finds it started
        else:
            return None
        counters = self.supervisor.counters.of(slug)
        if counters.waiting >= self.policy.queue_limit:
            return chosen
        counters.waiting += 1
        deadline = time.monotonic() + timeout
        try:
            while True:
                if dep.phase == "cold":
                    self.supervisor.wake(slug)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return dep.next_ready()
                await dep.wait_changed(remaining)
                found = self.supervisor.route(slug)
                if found is None:
                    return None
                dep = found
                free = dep.free_instance()
                if free is not None:
                    return free
                if dep.phase not in WAKES and not (dep.phase == "ready" and _more_coming(dep)):
                    return dep.next_ready()
        finally:
            counters.waiting -= 1


def _more_coming(dep: LiveDeployment) -> bool:
    """Says whether the chute has an instance on its way up, or may get one from the scaler."""
    if any(i.phase in ("starting", "restarting") for i in dep.instances):
        return True
    return len(dep.instances) < dep.spec.scale_bounds.ceiling
