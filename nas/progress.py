"""The one progress bar of the engine: profiling, evaluation, search and training draw it.

A rich bar with elapsed time and ETA (plus caller-defined field columns) when rich is
importable, a plain line at every tenth of the work when it is not (a bare GPU box runs
profiling and training with torch alone), nothing when disabled.

Example::

    with ProgressBar(total=len(jobs), description="evaluate") as bar:
        for job in jobs:
            bar.advance(note=str(run(job)))

    with progress_bar(len(todo), "latency table") as advance:  # the same, as a callable
        advance(4)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

Advance = Callable[..., None]  # advance(n=1, note="")

NOTE_COLUMN = "{task.fields[note]}"


class ProgressBar:
    """A progress bar over ``total`` units, used as a context manager (or `start` / `stop`).

    ``completed``: units already done (a resumed run). ``columns``: rich text templates
    shown after the ETA (default: the ``note`` of `advance`); ``fields``: the initial values
    of the fields those templates name. ``console``: rich's console to draw on (default:
    rich's own). Disabled, or with ``total <= 0``, it draws nothing.
    """

    def __init__(self, *, total: int, description: str, enabled: bool = True,
                 completed: int = 0, columns: Sequence[str] = (NOTE_COLUMN,),
                 fields: Mapping[str, Any] | None = None, console: Any = None) -> None:
        self.total, self.description, self.completed = total, description, completed
        self.enabled = enabled and total > 0
        self.columns, self.console = tuple(columns), console
        self.fields: dict[str, Any] = {"note": "", **dict(fields or {})}
        self._bar: Any = None
        self._task: Any = None
        self._plain = False
        self._start = 0.0
        self._shown = -1

    def start(self) -> None:
        """Draw the bar (idempotent)."""
        if not self.enabled or self._bar is not None or self._plain:
            return
        try:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
        except ImportError:
            self._plain, self._start, self._shown = True, time.perf_counter(), -1
            return
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                             MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                             TimeRemainingColumn(), *(TextColumn(c) for c in self.columns),
                             transient=False, console=self.console)
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=self.total,
                                        completed=self.completed, **self.fields)

    def stop(self) -> None:
        """Stop drawing (idempotent)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self._plain = False

    def __enter__(self) -> ProgressBar:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def advance(self, n: int = 1, note: str = "") -> None:
        """``n`` more units done; ``note`` (e.g. the last result) shown beside the bar."""
        self.update(self.completed + n, **({"note": note} if note else {}))

    def update(self, completed: int, **fields: Any) -> None:
        """Units done so far, and new values of the bar's fields."""
        self.completed = completed
        self.fields.update(fields)
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, **fields)
        elif self._plain:
            self._print_line()

    def _print_line(self) -> None:
        done, total = self.completed, self.total
        tenth = 10 * done // total
        if tenth == self._shown:
            return
        self._shown = tenth
        spent = time.perf_counter() - self._start
        eta = spent / done * (total - done) if done else float("nan")
        note = self.fields.get("note") or ""
        print(f"{self.description}: {done}/{total}, {spent:.0f} s, ETA {eta:.0f} s"
              + (f" ({note})" if note else ""), flush=True)


@contextmanager
def progress_bar(total: int, description: str, *, enabled: bool = True,
                 console: Any = None) -> Iterator[Advance]:
    """Yield ``advance(n=1, note="")`` of a `ProgressBar` over ``total`` units."""
    with ProgressBar(total=total, description=description, enabled=enabled,
                     console=console) as bar:
        yield bar.advance


__all__ = ["Advance", "ProgressBar", "progress_bar"]
