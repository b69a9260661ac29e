"""Progress of long work on stderr: a live bar on a terminal, a few plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from chutes_build.context import format_size

QUARTERS = (25, 50, 75)


class Progress:
    """Shows one step's progress: `with Progress("packing", total=n) as p: p.advance(k)`.

    On a terminal it is a rich bar (a spinner when the total is unknown) with the latest status;
    otherwise it prints a line at the start, at each quarter, for each new status, and at the end,
    so logs show where the time goes without a flood of lines.
    """

    def __init__(self, description: str, *, total: int | None = None, unit: str = "bytes") -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.completed = 0
        self.status = ""
        self.live = sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._quarters_shown = 0
        self._started = 0.0

    def __repr__(self) -> str:
        return f"Progress({self.description!r}, {self.completed}/{self.total})"

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        if self.live:
            self._start_bar()
        else:
            size = f" ({self._amount(self.total)})" if self.total else ""
            write_line(f"{self.description}{size} ...")
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif exc_type is None:
            write_line(f"{self.description}: done in {time.monotonic() - self._started:.1f} s")

    def advance(self, amount: int) -> None:
        """Counts `amount` more units done."""
        self.update(completed=self.completed + amount)

    def update(self, *, completed: int | None = None, total: int | None = None, status: str | None = None) -> None:
        """Sets how much is done, the total (when it becomes known), or the latest status line."""
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        new_status = status is not None and status != self.status
        if status is not None:
            self.status = status
        if self._bar is not None:
            self._bar.update(self._task, completed=self.completed, total=self.total, status=self.status)
            return
        if new_status and self.status:
            write_line(f"  {self.status}")
        if self.total:
            percent = 100 * self.completed // self.total
            while self._quarters_shown < len(QUARTERS) and percent >= QUARTERS[self._quarters_shown]:
                shown = QUARTERS[self._quarters_shown]
                done = f"{self._amount(self.completed)} of {self._amount(self.total)}"
                write_line(f"{self.description}: {shown}% ({done})")
                self._quarters_shown += 1

    def _amount(self, n: int | None) -> str:
        if n is None:
            return "?"
        return format_size(n) if self.unit == "bytes" else f"{n} {self.unit}"

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TransferSpeedColumn,
        )
        from rich.progress import (
            Progress as Bar,
        )

        amounts = [DownloadColumn(binary_units=True), TransferSpeedColumn()] if self.unit == "bytes" else []
        if self.unit != "bytes":
            amounts = [MofNCompleteColumn()]
        self._bar = Bar(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            *amounts,
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}", style="dim", markup=False),
            console=Console(stderr=True),
        )
        self._task = self._bar.add_task(self.description, total=self.total, status="")
        self._bar.start()


def write_line(text: str) -> None:
    """Writes one indented line to stderr, flushed so it shows up at once."""
    sys.stderr.write(f"  {text}\n")
    sys.stderr.flush()
