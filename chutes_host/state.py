"""What the control API and the gateway of one host share: config, database, supervisor, keys."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from chutes_host.config import HostConfig
from chutes_host.control.auth import FailureLimiter, KeyCache
from chutes_host.observability.metrics import GpuHistory
from chutes_host.scheduling.supervisor import Supervisor
from chutes_host.store.db import Database


@dataclass
class HostState:
    config: HostConfig
    db: Database
    supervisor: Supervisor
    keys: KeyCache
    failures: FailureLimiter = field(default_factory=FailureLimiter)  # failed key checks, per client
    # set (from a signal handler, hence a threading.Event) when the host starts to stop, so
    # endless responses such as followed logs end instead of holding the shutdown
    stopping: threading.Event = field(default_factory=threading.Event)
    started_at: float = field(default_factory=time.time)
    gpu_history: GpuHistory = field(default_factory=GpuHistory)
    jobs: Any = None  # the JobRunner (chutes_host.jobs.runs), once the app made it
