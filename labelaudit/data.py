"""Load a dataset (image folder or table) into one `Dataset` object.

Readers convert formats into this one schema; nothing downstream knows about file formats.
The work lives in images.py (image folders), readers.py (table files) and tables.py (table
columns); this module picks one and keeps the names other modules import from here.
"""

from __future__ import annotations

import os
from pathlib import Path

from .dataset import Dataset
from .errors import UsageError
from .images import MAX_IMAGE_PIXELS, load_image_folder, to_gray_or_rgb
from .readers import TABLE_SUFFIXES, read_as_text, read_table, separator
from .settings import check_setting
from .tables import load_table

__all__ = ["MAX_IMAGE_PIXELS", "TABLE_SUFFIXES", "Dataset", "detect_kind", "load_dataset",
           "load_image_folder", "load_table", "read_as_text", "read_table", "separator",
           "to_gray_or_rgb"]


def detect_kind(path: Path) -> str:
    """Guess 'images', 'tabular' or 'text' from a path; tables are refined after reading."""
    if path.is_dir():
        return "images"
    if path.suffix.lower() in TABLE_SUFFIXES:
        return "tabular"
    raise UsageError(
        f"{path}: not a folder and not a table ({', '.join(TABLE_SUFFIXES)}); "
        "pass a folder of class subfolders of images, or a .csv/.tsv/.parquet/.jsonl file"
    )


def load_dataset(
    path: str | os.PathLike,
    *,
    kind: str | None = None,
    label_column: str | None = None,
    text_column: str | None = None,
    id_column: str | None = None,
    image_size: int | None = None,
    encoding: str = "utf-8",
    strict: bool = False,
    follow_symlinks: bool = False,
    progress=None,
) -> Dataset:
    """Read an image folder or a table into a `Dataset`.

    >>> ds = load_dataset("datasets/digits-noisy")
    >>> ds.kind, ds.n_classes
    ('images', 10)
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder; check the path")
    if not os.access(path, os.R_OK) or (path.is_dir() and not os.access(path, os.X_OK)):
        raise UsageError(f"{path}: permission denied; make it readable (chmod u+r) and retry")
    check_setting("kind", kind)
    guessed = detect_kind(path)
    if guessed == "images":
        if kind not in (None, "images"):
            raise UsageError(f"{path} is a folder; --kind {kind} needs a table file")
        return load_image_folder(
            path, image_size=image_size, strict=strict, follow_symlinks=follow_symlinks,
            progress=progress,
        )
    if kind == "images":
        raise UsageError(f"{path} is a table; --kind images needs a folder of class subfolders")
    return load_table(
        path, kind=kind, label_column=label_column, text_column=text_column,
        id_column=id_column, encoding=encoding,
    )
