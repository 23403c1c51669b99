"""Progress on stderr (rich): bars only on a terminal, stage lines wherever stderr goes; both off
with --quiet."""

from __future__ import annotations

import sys
from contextlib import contextmanager


class Progress:
    """A small facade over rich.progress so library code does not care whether bars show.

    `log` receives the stage announcements (`stage`), which also show when stderr is no
    terminal; `console` forces bars onto a rich Console (tests give one writing to a StringIO).

    >>> import io
    >>> from rich.console import Console
    >>> progress = Progress(console=Console(file=io.StringIO(), force_terminal=True, width=80))
    >>> with progress.running():
    ...     step = progress.task("fold 2", total=30)
    ...     step(19)
    ...     step.done("stopped at epoch 19, best 11")
    >>> "fold 2 (stopped at epoch 19, best 11)" in progress.console.file.getvalue()
    True
    """

    def __init__(self, *, quiet: bool = False, log=None, console=None):
        self.enabled = not quiet and (console is not None or sys.stderr.isatty())
        self.console = console
        self._log = None if quiet else log
        self._progress = None
        self.tasks = []

    def stage(self, message: str) -> None:
        """Announce a stage of the work ("confident learning"), above any bars."""
        if self._log is None:
            return
        if self._progress is not None:
            self._progress.console.print(message, markup=False, highlight=False)
        else:
            self._log(message)

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
            TimeElapsedColumn(), console=self.console or Console(stderr=True), transient=False,
        )
        with self._progress:
            yield self
        self.tasks = list(self._progress.tasks)  # the bars as they ended, for a look back
        self._progress = None

    def track(self, items, *, description: str):
        if self._progress is None:
            yield from items
            return
        yield from self._progress.track(items, description=description)

    def task(self, description: str, total: int) -> Task:
        """A task of `total` steps: call it to advance, `.done(note)` when it ends early."""
        if self._progress is None:
            return Task(None, None, description)
        return Task(self._progress, self._progress.add_task(description, total=total),
                    description)


class Task:
    """One bar: `task(n)` advances it by n steps; `task.done(note)` completes it (its clock
    stops) and appends the note, for work that ends before its total (early stopping)."""

    def __init__(self, progress, task_id, description: str):
        self._progress, self._id, self.description = progress, task_id, description

    def __call__(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._id, n)

    def done(self, note: str | None = None) -> None:
        if self._progress is None:
            return
        total = self._progress.tasks[self._index()].total
        description = f"{self.description} ({note})" if note else self.description
        self._progress.update(self._id, completed=total, description=description)

    def _index(self) -> int:
        return next(k for k, t in enumerate(self._progress.tasks) if t.id == self._id)


def folds_named(folds) -> str:
    """Fold numbers as a stage line names them.

    >>> folds_named([2, 3, 4, 5]), folds_named([2])
    ('folds 2-5', 'fold 2')
    """
    folds = sorted(folds)
    return f"fold {folds[0]}" if len(folds) == 1 else f"folds {folds[0]}-{folds[-1]}"


SILENT = Progress(quiet=True)
