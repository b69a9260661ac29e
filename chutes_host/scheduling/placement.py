"""Where an instance goes: a pure choice of GPUs from the inventory, what others hold, and a NodeSelector."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence

from chutes.node_selector import NodeSelector
from chutes_host.scheduling.gpus import GB, Gpu


def fits(selector: NodeSelector, gpu: Gpu) -> bool:
    """Returns whether one GPU meets the selector's memory and type rules."""
    return gpu.memory_bytes >= selector.min_vram_gb_per_gpu * GB and selector.accepts(gpu.name)


def place(
    selector: NodeSelector,
    gpus: Sequence[Gpu],
    held: Collection[str],
    *,
    prefer: Sequence[str] = (),
    avoid: Collection[str] = (),
) -> tuple[Gpu, ...] | None:
    """Takes the inventory and the UUIDs others hold, and returns the GPUs for one instance, or None.

    GPUs in `prefer` (the instance's own from before a restart) are taken first; then the smallest
    that fit, so large cards stay free for chutes that need them; GPUs in `avoid` (remembered for
    another instance) only when nothing else fits. A CPU selector gets `()`.
    """
    wanted = selector.gpu_count
    if wanted == 0:
        return ()
    free = [g for g in gpus if g.uuid not in held and fits(selector, g)]
    if len(free) < wanted:
        return None
    rank = {uuid: n for n, uuid in enumerate(prefer)}
    free.sort(key=lambda g: (rank.get(g.uuid, len(rank)), g.uuid in avoid, g.memory_bytes, g.index))
    return tuple(sorted(free[:wanted], key=lambda g: g.index))


def could_ever_fit(selector: NodeSelector, gpus: Sequence[Gpu]) -> bool:
    """Returns whether the selector fits this inventory at all, with nothing held."""
    return place(selector, gpus, ()) is not None


def describe_need(selector: NodeSelector) -> str:
    """Returns e.g. 'needs 2 GPUs with >= 48 GB of type a100 or h100'."""
    count = selector.gpu_count
    text = f"needs {count} GPU{'s' if count != 1 else ''} with >= {selector.min_vram_gb_per_gpu} GB"
    if selector.include:
        text += " of type " + " or ".join(selector.include)
    if selector.exclude:
        text += ", not " + " or ".join(selector.exclude)
    return text


def explain(selector: NodeSelector, gpus: Sequence[Gpu], held: Mapping[str, str]) -> str:
    """Returns why an instance does not fit: what it needs, what is free and who holds the rest.

    e.g. 'needs 2 GPUs with >= 48 GB; free: 1 x NVIDIA L4 24 GB; busy: 2 x NVIDIA A100 80 GB (alice/llm)'
    """
    free = Counter(g.label() for g in gpus if g.uuid not in held)
    busy: dict[str, list[str]] = {}
    for g in gpus:
        if g.uuid in held:
            busy.setdefault(g.label(), []).append(held[g.uuid])
    parts = [describe_need(selector)]
    parts.append("free: " + (", ".join(f"{n} x {label}" for label, n in free.items()) or "none"))
    if busy:
        parts.append(
            "busy: "
            + ", ".join(f"{len(who)} x {label} ({', '.join(dict.fromkeys(who))})" for label, who in busy.items())
        )
    if not gpus:
        parts[-1] += " (this host has no GPUs)"
    return "; ".join(parts)
