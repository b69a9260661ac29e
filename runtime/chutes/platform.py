"""The Chutes platform's SDK features that mean nothing on a self-hosted host, and why."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chutes.chute import Chute

WHY = {
    "tee": "tee=True asks the platform for a confidential-computing node; this host runs the chute as any other",
    "encrypted_fs": "encrypted_fs=True asks the platform to encrypt the chute's files; this host stores them as usual "
    "(encrypt the host's disk to get that)",
    "lock_modules": "lock_modules is the platform's guard against changed Python modules; this host does not check it",
}


def platform_notes(chute: Chute) -> list[str]:
    """Takes a chute, and returns one line per platform-only feature it asks for that is ignored here."""
    notes = [WHY[key] for key, value in chute.platform.items() if value]
    selector = chute.node_selector
    if selector.max_hourly_price_per_gpu is not None:
        notes.append("node_selector max_hourly_price_per_gpu is a platform fee limit; this host charges nothing")
    if selector.ignored_keys:
        keys = ", ".join(selector.ignored_keys)
        notes.append(f"node_selector keys this host does not know were ignored: {keys} (a typo?)")
    return notes
