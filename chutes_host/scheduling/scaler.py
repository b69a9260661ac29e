"""The scaler: decides how many instances each chute should run, from the load the gateway counts.

It only decides; the supervisor carries the decisions out (it stays the one place that starts and
stops instances). Every decision carries its reason, which the supervisor logs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScalePolicy:
    """The host's scaling knobs (`chutes host serve` options), in seconds and requests."""

    up_after: float = 5.0  # load above the threshold this long adds an instance
    down_after: float = 60.0  # load that one instance fewer could carry, this long, removes one
    wake_timeout: float = 60.0  # a request to a cold or starting chute waits this long, then 503
    queue_timeout: float = 10.0  # a request finding every instance full waits this long for one
    queue_limit: int = 64  # requests that may wait so at once per chute; more go straight through
    interval: float = 0.25  # how often the scaler looks

    @property
    def tick(self) -> float:
        """Returns the scaler's period: short enough to honour the shortest window."""
        return min(self.interval, self.up_after / 2, self.down_after / 2)


@dataclass(frozen=True)
class Bounds:
    """One chute's range: `floor` (0 lets it scale to zero) to `ceiling` instances."""

    floor: int
    ceiling: int
    idle_after: float | None  # shutdown_after_seconds; None: never scale to zero
    capacity: float  # requests one instance carries before more are wanted: scaling_threshold x concurrency


@dataclass(frozen=True)
class Decision:
    target: int
    reason: str

    def __repr__(self) -> str:
        return f"Decision(target={self.target}, reason={self.reason!r})"


@dataclass
class Watch:
    """What the scaler remembers of one chute between looks."""

    requests_seen: int = 0
    last_request: float = 0.0
    busy_since: float | None = None
    quiet_since: float | None = None


class Scaler:
    """Decides scale changes per chute slug; keeps one Watch per slug."""

    def __init__(self, policy: ScalePolicy) -> None:
        self.policy = policy
        self.watches: dict[str, Watch] = {}

    def started(self, slug: str, now: float) -> None:
        """Records that an instance of the chute was woken or became ready: its idle time counts from now."""
        watch = self.watches.setdefault(slug, Watch())
        watch.last_request = now
        watch.busy_since = watch.quiet_since = None

    def forget(self, slug: str) -> None:
        self.watches.pop(slug, None)

    def decide(
        self, slug: str, now: float, *, running: int, demand: int, requests: int, bounds: Bounds
    ) -> Decision | None:
        """Takes the instances running (or starting), the requests in flight or waiting, and the count of
        requests so far; returns a Decision when the chute should run another number of instances."""
        watch = self.watches.get(slug)
        if watch is None:
            watch = self.watches[slug] = Watch(requests_seen=requests, last_request=now)
        if requests != watch.requests_seen or demand:
            watch.requests_seen, watch.last_request = requests, now
        if running < bounds.floor:
            return self._decided(watch, bounds.floor, f"below the floor of {bounds.floor} set by scale")
        if running == 0:  # cold: only a request wakes it (the gateway asks the supervisor)
            watch.busy_since = watch.quiet_since = None
            return None
        idle = now - watch.last_request
        if bounds.floor == 0 and bounds.idle_after is not None and not demand and idle >= bounds.idle_after:
            why = f"no request for {idle:.0f} s (shutdown_after_seconds {bounds.idle_after:g})"
            return self._decided(watch, 0, why)
        limit = bounds.capacity * running
        if demand > limit and running < bounds.ceiling:
            watch.quiet_since = None
            if watch.busy_since is None:
                watch.busy_since = now
            if now - watch.busy_since >= self.policy.up_after:
                return self._decided(
                    watch,
                    running + 1,
                    f"{demand} request(s) in flight or waiting on {running} instance(s) stayed above "
                    f"scaling_threshold x concurrency = {bounds.capacity:g} each for {self.policy.up_after:g} s",
                )
            return None
        watch.busy_since = None
        keep = max(bounds.floor, 1)
        if running > keep and demand <= bounds.capacity * (running - 1):
            if watch.quiet_since is None:
                watch.quiet_since = now
            if now - watch.quiet_since >= self.policy.down_after:
                return self._decided(
                    watch,
                    running - 1,
                    f"{demand} request(s) in flight fit on {running - 1} instance(s) for {self.policy.down_after:g} s",
                )
            return None
        watch.quiet_since = None
        return None

    @staticmethod
    def _decided(watch: Watch, target: int, reason: str) -> Decision:
        watch.busy_since = watch.quiet_since = None
        return Decision(target, reason)
