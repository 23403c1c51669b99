"""Load a dataset (image folder or table) into one `Dataset` object.

Readers convert formats into this one schema; nothing downstream knows about file formats.
"""

from __future__ import annotations

import os
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UsageError

KINDS = ("images", "tabular", "text")
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl")
LABEL_CANDIDATES = ("label", "labels", "target", "class", "y")
# A string column counts as free text when its values are this long on average (characters).
TEXT_MIN_MEAN_LENGTH = 30
# Images above this many pixels are skipped as possible decompression bombs.
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_SIZE = 32


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
            "n_skipped": len(self.skipped),
            "skipped": [{"id": i, "reason": r} for i, r in self.skipped[:1000]],
            "warnings": list(self.warnings),
            **self.info,
        }


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

    >>> ds = load_dataset("datasets/digits-noisy")  # doctest: +SKIP
    >>> ds.kind, ds.n_classes  # doctest: +SKIP
    ('images', 10)
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder; check the path")
    if not os.access(path, os.R_OK) or (path.is_dir() and not os.access(path, os.X_OK)):
        raise UsageError(f"{path}: permission denied; make it readable (chmod u+r) and retry")
    if kind is not None and kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
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


# ---------------------------------------------------------------------------------------------
# Images


def _inside(root: Path, target: Path) -> bool:
    try:
        target.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _walk_images(root: Path, class_dir: Path, follow_symlinks: bool):
    """Yield (file, reason-or-None) under one class folder, sorted, recursing into subfolders."""
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=follow_symlinks):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            file = here / name
            if file.is_symlink() and not follow_symlinks and not _inside(root, file):
                yield file, "symlink leading outside the dataset (pass --follow-symlinks to use it)"
            elif file.suffix.lower() not in IMAGE_EXTENSIONS:
                yield file, "not an image file (unknown extension)"
            else:
                yield file, None


def load_image_folder(
    root: Path,
    *,
    image_size: int | None = None,
    strict: bool = False,
    follow_symlinks: bool = False,
    progress=None,
) -> Dataset:
    """Read ``root/<class>/<file>`` (ImageFolder layout) into a compact uint8 array."""
    from PIL import Image

    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        loose = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
        if not loose:
            raise UsageError(f"{root}: the folder is empty; point at a folder of class subfolders")
        raise UsageError(
            f"{root}: no class subfolders found; put each image in a subfolder named after its "
            "class, e.g. cat/001.png and dog/002.png"
        )

    candidates, skipped = [], []
    for label, class_dir in enumerate(subdirs):
        for file, reason in _walk_images(root, class_dir, follow_symlinks):
            rel = file.relative_to(root).as_posix()
            if reason:
                skipped.append((rel, reason))
            else:
                candidates.append((rel, file, label))
    if not candidates:
        raise UsageError(
            f"{root}: no images found in its class subfolders "
            f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )

    # Header pass: sizes and modes, and refuse unreadable files early.
    headers = []
    with _warnings.catch_warnings():
        _warnings.simplefilter("error", Image.DecompressionBombWarning)
        for rel, file, label in _track(progress, candidates, "reading image headers"):
            try:
                if file.stat().st_size == 0:
                    raise ValueError("zero-byte file")
                with Image.open(file) as im:
                    w, h = im.size
                    if w * h > MAX_IMAGE_PIXELS:
                        raise ValueError(f"image too large ({w}x{h} pixels), possible "
                                         "decompression bomb")
                    headers.append((rel, file, label, im.mode, max(w, h)))
            except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not fatal
                skipped.append((rel, f"unreadable image: {_short(exc)}"))
    if strict and skipped:
        rel, reason = skipped[0]
        raise UsageError(
            f"{root}: {len(skipped)} file(s) cannot be used, first {rel}: {reason}; "
            "fix or remove them, or drop --strict to skip them"
        )
    if not headers:
        raise UsageError(f"{root}: none of the image files could be read")

    if image_size is None:
        image_size = int(min(MAX_IMAGE_SIZE, np.median([h[4] for h in headers])))
    gray_modes = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "P"}
    color = any(h[3] not in gray_modes for h in headers)
    channels = 3 if color else 1

    pixels = np.zeros((len(headers), channels, image_size, image_size), dtype=np.uint8)
    keep = np.ones(len(headers), dtype=bool)
    for i, (rel, file, _label, _mode, _side) in enumerate(
        _track(progress, headers, "decoding images")
    ):
        try:
            pixels[i] = _decode(file, image_size, color)
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
            keep[i] = False
            skipped.append((rel, f"unreadable image: {_short(exc)}"))
    if strict and not keep.all():
        rel, reason = skipped[-1]
        raise UsageError(f"{root}: {rel}: {reason}; fix or remove it, or drop --strict")
    headers = [h for h, k in zip(headers, keep, strict=True) if k]
    pixels = pixels[keep]

    ids = np.array([h[0] for h in headers], dtype=object)
    labels = np.array([h[2] for h in headers], dtype=np.int64)
    classes = tuple(p.name for p in subdirs)
    warn = []
    if skipped:
        warn.append(f"skipped {len(skipped)} file(s) that are not usable images "
                    "(listed in summary.json; --strict refuses instead)")
    modes = sorted({h[3] for h in headers})
    if len(modes) > 1:
        warn.append(f"images have mixed modes ({', '.join(modes)}); all converted to "
                    f"{'RGB' if color else 'grayscale'}")
    ds = Dataset(
        path=str(root), kind="images", ids=ids, labels=labels, classes=classes, inputs=pixels,
        files=np.array([str(h[1]) for h in headers], dtype=object), skipped=tuple(skipped),
        warnings=tuple(warn), info={"image_size": image_size, "channels": channels},
    )
    return _check_classes(ds, where=str(root))


def _decode(file: Path, size: int, color: bool) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(file) as im:
        im.load()
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            # 16-bit / float: scale to 8 bits by the image's own range.
            arr = np.asarray(im, dtype=np.float64)
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
            im = Image.fromarray(arr.astype(np.uint8), mode="L")
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im)
        im = im.convert("RGB" if color else "L")
        im = ImageOps.pad(im, (size, size), method=Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    return arr.transpose(2, 0, 1) if color else arr[None]


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


def _track(progress, items, description):
    return progress.track(items, description=description) if progress is not None else items


# ---------------------------------------------------------------------------------------------
# Tables


def read_table(path: Path, *, encoding: str = "utf-8"):
    """Read .csv/.tsv/.parquet/.jsonl into a DataFrame, with a clear message when it cannot."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", encoding=encoding,
                                low_memory=False)
        elif suffix == ".parquet":
            frame = pd.read_parquet(path, engine="pyarrow")
        elif suffix == ".jsonl":
            frame = pd.read_json(path, lines=True, encoding=encoding, dtype=False)
        else:
            raise UsageError(f"{path}: unknown table type {suffix!r}; use one of "
                             f"{', '.join(TABLE_SUFFIXES)}")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path}: cannot decode the file as {encoding} (byte {exc.start}); pass "
            "--encoding with the file's encoding, e.g. --encoding latin-1"
        ) from None
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path}: the file is empty; it needs a header row and data rows") from None
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - parser errors of every reader end up here
        raise UsageError(
            f"{path}: cannot read it as {suffix[1:]} ({_short(exc)}); check that the file is a "
            f"complete, valid {suffix[1:]} file"
        ) from None
    frame.columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise UsageError(f"{path}: the table has a header but no rows; add data rows")
    return frame


def _choose_label_column(frame, path: Path, label_column: str | None) -> str:
    columns = list(frame.columns)
    if label_column is not None:
        if label_column not in columns:
            raise UsageError(
                f"{path}: no column {label_column!r} (columns: {', '.join(columns)}); "
                "pass --label-column with one of these"
            )
        return label_column
    lower = {c.lower(): c for c in columns}
    for candidate in LABEL_CANDIDATES:
        if candidate in lower:
            return lower[candidate]
    raise UsageError(
        f"{path}: no label column found (looked for {', '.join(LABEL_CANDIDATES)}; "
        f"columns: {', '.join(columns)}); pass --label-column NAME"
    )


def _is_text_column(series) -> bool:
    import pandas as pd

    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        return False
    values = series.dropna()
    if values.empty or not values.map(lambda v: isinstance(v, str)).all():
        return False
    return float(values.str.len().mean()) >= TEXT_MIN_MEAN_LENGTH


def _sorted_classes(values) -> list:
    try:
        return sorted(set(values))
    except TypeError:  # mixed types: sort by their text
        return sorted(set(values), key=str)


def load_table(
    path: Path,
    *,
    kind: str | None = None,
    label_column: str | None = None,
    text_column: str | None = None,
    id_column: str | None = None,
    encoding: str = "utf-8",
) -> Dataset:
    """Read a table; a long-string feature column (or ``text_column``) makes it a text dataset."""
    import pandas as pd

    frame = read_table(path, encoding=encoding)
    label_column = _choose_label_column(frame, path, label_column)
    for name, col in (("--id-column", id_column), ("--text-column", text_column)):
        if col is not None and col not in frame.columns:
            raise UsageError(f"{path}: no column {col!r} for {name} "
                             f"(columns: {', '.join(frame.columns)})")
    if id_column is not None:
        ids = frame[id_column]
        if ids.isna().any():
            raise UsageError(f"{path}: id column {id_column!r} has empty values; every row needs "
                             "an id")
        ids = ids.astype(str)
        dup = ids[ids.duplicated()]
        if len(dup):
            raise UsageError(
                f"{path}: id column {id_column!r} has duplicate values ({len(dup)} rows, first "
                f"{dup.iloc[0]!r}); ids must be unique, or drop --id-column to use row numbers"
            )
    else:
        ids = pd.Series(np.arange(len(frame)).astype(str), index=frame.index)

    warn = []
    missing = frame[label_column].isna()
    if missing.all():
        raise UsageError(f"{path}: label column {label_column!r} is empty in every row")
    if missing.any():
        warn.append(f"dropped {int(missing.sum())} row(s) with no label in {label_column!r}")
    keep = ~missing.to_numpy()
    frame, ids = frame[keep], ids[keep]
    raw_labels = frame[label_column]
    if raw_labels.map(type).nunique() > 1:
        raw_labels = raw_labels.astype(str)
    class_values = _sorted_classes(raw_labels.tolist())
    if len(class_values) < 2:
        raise UsageError(
            f"{path}: label column {label_column!r} has only one class ({class_values[0]!r}); "
            "an audit needs at least two classes"
        )
    if len(class_values) == len(frame) and len(frame) > 20:
        raise UsageError(
            f"{path}: every value of {label_column!r} is unique, so it looks like an id, not a "
            "label; pass --label-column with the column that holds the classes"
        )
    lookup = {v: i for i, v in enumerate(class_values)}
    labels = raw_labels.map(lookup).to_numpy(dtype=np.int64)
    classes = tuple(_class_name(v) for v in class_values)
    if len(set(classes)) != len(classes):
        raise UsageError(f"{path}: label values of {label_column!r} collide when written as text "
                         "(e.g. 1 and '1'); make the label column one type")

    features = [c for c in frame.columns if c not in (label_column, id_column)]
    if not features:
        raise UsageError(f"{path}: no feature columns besides the label; nothing to learn from")
    if text_column is None and kind != "tabular":
        texts = [c for c in features if _is_text_column(frame[c])]
        if len(texts) == 1:
            text_column = texts[0]
        elif len(texts) > 1 and kind == "text":
            raise UsageError(f"{path}: several text columns ({', '.join(texts)}); pass "
                             "--text-column NAME")
    if kind == "text" and text_column is None:
        raise UsageError(f"{path}: no text column found; pass --text-column NAME")

    common = dict(path=str(path), ids=ids.to_numpy(dtype=object), labels=labels, classes=classes,
                  label_column=label_column)
    if text_column is not None:
        texts = frame[text_column].fillna("").astype(str).to_numpy(dtype=object)
        ds = Dataset(kind="text", inputs=texts, text_column=text_column, warnings=tuple(warn),
                     **common)
    else:
        X = frame[features].reset_index(drop=True)
        for col in features:
            series = X[col]
            if series.dtype == object and series.dropna().map(type).nunique() > 1:
                warn.append(f"column {col!r} mixes types; treated as categorical text")
                X[col] = series.astype(str).where(series.notna())
        ds = Dataset(kind="tabular", inputs=X, warnings=tuple(warn), **common)
    return _check_classes(ds, where=str(path))


def _class_name(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_classes(ds: Dataset, *, where: str) -> Dataset:
    counts = np.bincount(ds.labels, minlength=ds.n_classes)
    present = counts > 0
    if present.sum() < 2:
        raise UsageError(f"{where}: only one class has usable samples; an audit needs at least two")
    return ds
