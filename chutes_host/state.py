"""What the control API and the gateway of one host share: config, database, supervisor, keys."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from chutes_host.auth import KeyCache
from chutes_host.config import HostConfig
from chutes_host.db import Database
from chutes_host.metrics import GpuHistory
from chutes_host.supervisor import Supervisor


@dataclass
class HostState:
    config: HostConfig
    db: Database
    supervisor: Supervisor
    keys: KeyCache
    started_at: float = field(default_factory=time.time)
    gpu_history: GpuHistory = field(default_factory=GpuHistory)
