"""The one loaded dataset object every later step works on, whatever the file format."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UsageError


@dataclass(frozen=True)
class Dataset:
    """One loaded dataset: what every later step works on.

    ``inputs`` depends on ``kind``: images -> uint8 array (n, channels, size, size);
    tabular -> pandas DataFrame of feature columns; text -> numpy array of str.
    ``ids`` are strings; ``labels`` index into ``classes``.
    """

    path: str
    kind: str
    ids: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    inputs: Any
    label_column: str | None = None
    text_column: str | None = None
    id_column: str | None = None  # tables: the column the ids come from; None: row numbers
    files: np.ndarray | None = None  # images: absolute file paths, aligned with ids
    skipped: tuple[tuple[str, str], ...] = ()  # (id or file, reason)
    warnings: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return len(self.ids)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict:
        """The `dataset` block of summary.json."""
        return {
            "path": self.path,
            "kind": self.kind,
            "n_samples": self.n_samples,
            "n_classes": self.n_classes,
            "classes": list(self.classes),
            "class_counts": {c: int(n) for c, n in zip(
                self.classes, np.bincount(self.labels, minlength=self.n_classes), strict=True)},
            "label_column": self.label_column,
            "text_column": self.text_column,
            "id_column": self.id_column,
            "n_skipped": len(self.skipped),
            "skipped": [{"id": i, "reason": r} for i, r in self.skipped[:1000]],
            "warnings": list(self.warnings),
            **self.info,
        }


def check_classes(ds: Dataset, *, where: str) -> Dataset:
    """Refuse fewer than two usable classes; drop classes left with no samples (with a warning)."""
    counts = np.bincount(ds.labels, minlength=ds.n_classes)
    present = np.flatnonzero(counts)
    if len(present) < 2:
        only = f" ({ds.classes[present[0]]!r})" if len(present) else ""
        how = ("add a subfolder with images for each class" if ds.kind == "images"
               else "check --label-column")
        raise UsageError(f"{where}: only one class{only} has usable samples; an audit needs at "
                         f"least two; {how}")
    if len(present) == ds.n_classes:
        return ds
    empty = [ds.classes[i] for i in np.flatnonzero(counts == 0)]
    remap = np.full(ds.n_classes, -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    return replace(
        ds, labels=remap[ds.labels], classes=tuple(ds.classes[i] for i in present),
        warnings=ds.warnings + (f"left out {len(empty)} class(es) with no usable samples: "
                                f"{', '.join(map(repr, empty[:10]))}",),
    )


def short_reason(exc: Exception, file: Path | None = None) -> str:
    """An exception as a short reason for a message, without the file name the id gives.

    >>> short_reason(OSError("cannot identify image file 'a/b.png'"), Path("a/b.png"))
    'cannot identify image file'
    """
    text = str(exc) or type(exc).__name__
    if file is not None:  # the id already names the file; keep the reason short
        text = text.replace(f" {str(file)!r}", "").replace(str(file), "the file")
    return text if len(text) < 200 else text[:197] + "..."
