"""Progress bars on stderr (rich); silent when asked or when stderr is not a terminal."""

from __future__ import annotations

import sys
from contextlib import contextmanager


class Progress:
    """A small facade over rich.progress so library code does not care whether bars show."""

    def __init__(self, *, quiet: bool = False):
        self.enabled = not quiet and sys.stderr.isatty()
        self._progress = None

    @contextmanager
    def running(self):
        if not self.enabled:
            yield self
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._progress = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=Console(stderr=True), transient=False,
        )
        with self._progress:
            yield self
        self._progress = None

    def track(self, items, *, description: str):
        if self._progress is None:
            yield from items
            return
        yield from self._progress.track(items, description=description)

    def task(self, description: str, total: int):
        """Return an advance() callable for a task of `total` steps."""
        if self._progress is None:
            return lambda n=1: None
        task_id = self._progress.add_task(description, total=total)
        return lambda n=1: self._progress.advance(task_id, n)


SILENT = Progress(quiet=True)
