"""Measures one placement decision on a busy host: 64 GPUs, 100 deployments holding most of them.

    .venv/bin/python bench/bench_placement.py [--rounds 2000] [--seed 7]

Side by side, in one run, on the same inventory and holdings:
- `place()`, the pure function: one instance of a random selector (count, VRAM, type);
- `Holdings.reserve()` + `release()`: what the supervisor does per instance (no gpus.json);
- the same with gpus.json written on every change, as a host does;
- `Holdings.refusal()`, the deploy-time check, and the refusal text for a chute that does not fit.

Goal (issue 10): a placement decision under 1 ms with 64 GPUs and 100 deployments.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "runtime")]

from chutes.node_selector import NodeSelector  # noqa: E402
from chutes_host.scheduling.gpus import load_inventory  # noqa: E402
from chutes_host.scheduling.holdings import Holder, Holdings  # noqa: E402
from chutes_host.scheduling.placement import place  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MACHINE = "24xNVIDIA A100-SXM4-80GB:80,16xNVIDIA H100 80GB HBM3:80,16xNVIDIA L40S:48,8xNVIDIA L4:24"
TYPES = [None, ["a100"], ["h100"], ["l40s", "l4"], ["a100", "h100"]]


def random_selector(rng: random.Random) -> NodeSelector:
    return NodeSelector(
        gpu_count=rng.choice([1, 1, 1, 2, 4]),
        min_vram_gb_per_gpu=rng.choice([16, 24, 48, 80]),
        include=rng.choice(TYPES),
    )


def busy_host(rng: random.Random, path: Path | None) -> tuple[Holdings, list[NodeSelector]]:
    """Returns holdings where 100 deployments took what they could and a quarter of them left again."""
    holdings = Holdings(load_inventory(MACHINE), path)
    deployments = [random_selector(rng) for _ in range(100)]
    owners = [object() for _ in deployments]
    for n, (owner, selector) in enumerate(zip(owners, deployments, strict=True)):
        holdings.reserve(owner, Holder(f"user{n}/chute{n}", f"user{n}-chute{n}", 0), selector)
    for owner in owners[::4]:  # some chutes were deleted since: GPUs free here and there, the rest pending
        holdings.release(owner)
    return holdings, deployments


def timed(fn, rounds: int) -> dict[str, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return {
        "median_us": statistics.median(samples),
        "p99_us": samples[int(len(samples) * 0.99) - 1],
        "max_us": samples[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    holdings, deployments = busy_host(rng, None)
    gpus = holdings.inventory.gpus
    held = holdings.held()
    selectors = [random_selector(rng) for _ in range(64)]
    pick = iter(range(10**9))

    def one_place() -> None:
        place(selectors[next(pick) % 64], gpus, held)

    def reserve_release(book: Holdings) -> None:
        owner = object()
        book.reserve(owner, Holder("bench/x", "bench-x", 0), selectors[next(pick) % 64])
        book.release(owner)

    with tempfile.TemporaryDirectory() as tmp:
        on_disk, _ = busy_host(random.Random(args.seed), Path(tmp) / "gpus.json")
        rows = {
            "place()": timed(one_place, args.rounds),
            "reserve+release": timed(lambda: reserve_release(holdings), args.rounds),
            "reserve+release, gpus.json": timed(lambda: reserve_release(on_disk), max(args.rounds // 10, 50)),
            "refusal()": timed(lambda: holdings.refusal(selectors[next(pick) % 64], replacing="x"), args.rounds),
        }
    pending = len(holdings.snapshot()["pending"])
    print(
        f"{len(gpus)} GPUs, {len(deployments)} deployments, {len(held)} GPUs held, {pending} pending; "
        f"{args.rounds} rounds"
    )
    print(f"{'case':<30} {'median µs':>10} {'p99 µs':>10} {'max µs':>10}")
    for name, row in rows.items():
        print(f"{name:<30} {row['median_us']:>10.1f} {row['p99_us']:>10.1f} {row['max_us']:>10.1f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "placement.json").write_text(json.dumps(rows, indent=2) + "\n")
    goal = rows["reserve+release"]["p99_us"] < 1000
    print(f"goal (a decision under 1 ms, p99 of reserve+release): {'met' if goal else 'MISSED'}")
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
