"""Which instance holds which GPU on this host, kept in memory and mirrored to a file that outlives restarts."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chutes.node_selector import NodeSelector
from chutes_host.scheduling.gpus import Gpu, Inventory
from chutes_host.scheduling.placement import could_ever_fit, explain, place

log = logging.getLogger("chutes.host")


@dataclass(frozen=True)
class Holder:
    """Who holds a GPU: the chute as users name it ('alice/llm'), its slug and the instance's index."""

    chute: str
    slug: str
    index: int

    @property
    def instance(self) -> str:
        """Returns e.g. 'alice-llm#0'."""
        return f"{self.slug}#{self.index}"


class Holdings:
    """The inventory and its assignments; each GPU is held by at most one instance.

    `path` (DATA/gpus.json) records the assignments whenever they change, so that a restarted host
    puts each instance back on the GPUs it had, and `chutes host gpus` can show them.
    """

    def __init__(self, inventory: Inventory, path: Path | None = None) -> None:
        self.inventory = inventory
        self.path = path
        self._held: dict[str, tuple[Holder, object]] = {}
        self._pending: dict[object, Holder] = {}
        self._remembered = self._read_remembered()

    def held(self, *, ignore: str | None = None) -> dict[str, str]:
        """Returns {uuid: 'alice/llm'} for every held GPU, leaving out those of the chute with slug `ignore`."""
        return {uuid: h.chute for uuid, (h, _) in self._held.items() if h.slug != ignore}

    def reserve(self, owner: object, holder: Holder, selector: NodeSelector) -> tuple[Gpu, ...] | None:
        """Places one instance (`owner` is its key); returns its GPUs, or None and remembers it is pending."""
        mine = self._remembered.get(holder.instance, [])
        others = {u for name, uuids in self._remembered.items() if name != holder.instance for u in uuids}
        gpus = place(selector, self.inventory.gpus, self._held, prefer=mine, avoid=others)
        if gpus is None:
            changed = self._pending.get(owner) != holder
            self._pending[owner] = holder
        else:
            changed = self._pending.pop(owner, None) is not None or bool(gpus)
            self._remembered.pop(holder.instance, None)
            for gpu in gpus:
                self._held[gpu.uuid] = (holder, owner)
        if changed:  # a CPU instance changes nothing worth recording
            self._save()
        return gpus

    def release(self, owner: object) -> bool:
        """Frees what `owner` holds (or forgets that it waits); returns whether GPUs became free."""
        freed = [uuid for uuid, (_, o) in self._held.items() if o is owner]
        for uuid in freed:
            del self._held[uuid]
        waited = self._pending.pop(owner, None) is not None
        if freed or waited:
            self._save()
        return bool(freed)

    def freeze(self) -> None:
        """Stops recording changes: a stopping host releases everything, but the next one should know."""
        self.path = None

    def forget_remembered(self) -> None:
        """Drops what the previous run held but this one did not claim (e.g. chutes deleted since)."""
        self._remembered.clear()
        self._save()

    def fits(self, selector: NodeSelector, count: int) -> bool:
        """Returns whether `count` instances of this selector fit on the GPUs free now."""
        held = set(self._held)
        for _ in range(count):
            gpus = place(selector, self.inventory.gpus, held)
            if gpus is None:
                return False
            held.update(g.uuid for g in gpus)
        return True

    def why_not(self, selector: NodeSelector) -> str:
        """Returns what the selector needs, what is free and who holds the rest."""
        return explain(selector, self.inventory.gpus, self.held())

    def refusal(self, selector: NodeSelector, *, replacing: str) -> tuple[int, str] | None:
        """Returns (status, message) when not even one instance of a new deploy could start now.

        422 when this host could never hold it; 409 when other chutes hold the GPUs it needs.
        `replacing` is the slug of the chute being redeployed, whose own GPUs count as free.
        """
        if selector.gpu_count == 0:
            return None
        gpus = self.inventory.gpus
        if not could_ever_fit(selector, gpus):
            hint = "; a chute that needs no GPU can say NodeSelector(gpu_count=0)" if not gpus else ""
            return 422, f"this host can never run it: {explain(selector, gpus, {})}{hint}"
        held = self.held(ignore=replacing)
        if place(selector, gpus, held) is None:
            return 409, f"no GPUs free for it now: {explain(selector, gpus, held)}; delete or scale down a chute"
        return None

    def snapshot(self) -> dict[str, Any]:
        """Returns the inventory with each GPU's holder, as written to gpus.json."""
        return {
            "source": self.inventory.source,
            "note": self.inventory.note,
            "gpus": [
                {
                    **g.describe(),
                    "mig": g.mig,
                    "holder": self._held[g.uuid][0].instance if g.uuid in self._held else None,
                }
                for g in self.inventory.gpus
            ],
            "pending": sorted(h.instance for h in self._pending.values()),
        }

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.snapshot(), indent=1) + "\n")
            os.replace(tmp, self.path)
        except OSError as exc:  # the assignments still hold in memory; only a restart loses them
            log.warning("cannot record GPU assignments in %s: %s", self.path, exc)

    def _read_remembered(self) -> dict[str, list[str]]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            saved = json.loads(self.path.read_text())
            remembered: dict[str, list[str]] = {}
            for gpu in saved.get("gpus", []):
                if gpu.get("holder"):
                    remembered.setdefault(gpu["holder"], []).append(gpu["uuid"])
            return remembered
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable %s (%s); instances get fresh GPUs", self.path, exc)
            return {}
