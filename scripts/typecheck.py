"""Runs pyright (standard mode, see [tool.pyright] in pyproject.toml) over each package against a baseline.

The baseline (scripts/typecheck-baseline.json) holds each package's error count; the check fails when
a package has more errors than its baseline, and says to lower the baseline when it has fewer, so the
counts only go down.

    python scripts/typecheck.py            # check
    python scripts/typecheck.py --update   # write today's counts as the baseline
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "scripts" / "typecheck-baseline.json"
PACKAGES = {
    "runtime": "runtime",
    "chutes_build": "chutes_build",
    "chutes_host": "chutes_host",
    "chutes_cli": "chutes_cli",
}


def run_pyright() -> list[dict]:
    """Runs pyright once over every package, and returns its error diagnostics."""
    pyright = shutil.which("pyright") or str(Path(sys.executable).with_name("pyright"))
    result = subprocess.run(
        [pyright, "--outputjson", *PACKAGES.values()], cwd=ROOT, capture_output=True, text=True, check=False
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        sys.exit(f"error: pyright did not run (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return [d for d in report["generalDiagnostics"] if d["severity"] == "error"]


def package_of(path: str) -> str:
    relative = Path(path).resolve().relative_to(ROOT)
    return next(name for name, folder in PACKAGES.items() if relative.parts[0] == folder)


def main(argv: list[str]) -> int:
    errors = run_pyright()
    counts = Counter(package_of(d["file"]) for d in errors)
    counts = {name: counts.get(name, 0) for name in PACKAGES}
    if "--update" in argv:
        BASELINE.write_text(json.dumps(counts, indent=2) + "\n")
        print(f"baseline written: {counts}")
        return 0
    baseline = json.loads(BASELINE.read_text())
    status = 0
    for name, count in counts.items():
        allowed = baseline.get(name, 0)
        if count > allowed:
            status = 1
            print(f"error: pyright finds {count} errors in {name}/, more than its baseline of {allowed}:")
            for d in errors:
                if package_of(d["file"]) == name:
                    line = d["range"]["start"]["line"] + 1
                    where = Path(d["file"]).resolve().relative_to(ROOT)
                    print(f"  {where}:{line}: {d['message'].splitlines()[0]} ({d.get('rule', '')})")
            print("  fix the new ones (the list holds the old ones too: run pyright on the files you changed)")
        elif count < allowed:
            print(f"{name}/: {count} pyright errors, fewer than the baseline of {allowed}; lower it with")
            print("  python scripts/typecheck.py --update   (and commit scripts/typecheck-baseline.json)")
        else:
            print(f"{name}/: {count} pyright errors (baseline {allowed})")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
