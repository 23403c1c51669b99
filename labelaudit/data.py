"""Load a dataset (image folder or table) into one `Dataset` object.

Readers convert formats into this one schema; nothing downstream knows about file formats.
"""

from __future__ import annotations

import errno
import math
import os
import re
import warnings as _warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UsageError
from .settings import check_setting

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
# The decoded pixels may take this share of the machine's memory; later steps copy parts of them
# as floats. Decoding one image also needs a few bytes per pixel at the target size.
MEMORY_SHARE = 0.25
DECODE_BYTES_PER_PIXEL = 16
# Modes read as one grey channel; any other mode (RGB, RGBA, CMYK, P, ...) makes the set colour.
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
# Modes deeper than 8 bits, scaled down to 8 by each image's own range.
HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "F")
# A text column whose values are numbers except for at most this share is read as numbers.
NOT_NUMBER_SHARE = 0.1
# A number this many robust spreads (interquartile ranges) from its column's median is absurd.
ABSURD_SPREADS = 1e6
# Column names that say "identifier" (sample_id, ID, uuid, index, pandas' unnamed index column).
ID_NAME = re.compile(r"(?:.*[_\- ])?(?:id|uuid|guid|key|index)|unnamed: ?0", re.IGNORECASE)


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


# ---------------------------------------------------------------------------------------------
# Images


def _inside(root: Path, target: Path) -> bool:
    """Whether `target`, with every symlink resolved, lies under the (resolved) `root`."""
    real = _resolve(target)
    return real is not None and real.is_relative_to(root)


def _resolve(path: Path) -> Path | None:
    """`path` with every symlink resolved, or None for a link loop (Python 3.11 raises
    RuntimeError there, later versions OSError)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return None


def _link_problem(path: Path) -> str | None:
    """'symlink loop' or 'broken symlink' for a symlink that leads to nothing, else None."""
    try:
        os.stat(path)
    except OSError as exc:
        return "symlink loop" if exc.errno == errno.ELOOP else "broken symlink"
    return None


def _scandir(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return sorted((e for e in entries if not e.name.startswith(".")),
                          key=lambda e: e.name)
    except PermissionError:
        raise UsageError(f"{folder}: permission denied while listing the folder; make it "
                         "readable (chmod -R u+rX on the dataset) and retry") from None


def _clash(real: Path, name: str, real_root: Path, classes: dict) -> str | None:
    """Why the linked folder `real` must not be read for class `name`, or None.

    It must not when it holds the whole dataset folder (every class would be read again), or
    when it is, holds or lies inside the folder of another class (`classes` maps each resolved
    class folder inside the dataset to its name): its files would be read under two classes.
    """
    if real_root.is_relative_to(real):
        return ("symlink to a folder that holds the whole dataset folder; not followed, as it "
                "would read every class again")
    for folder, owner in classes.items():
        if owner != name and (real.is_relative_to(folder) or folder.is_relative_to(real)):
            return (f"symlink to a folder of class {owner!r}; not followed, so no file is read "
                    "under two classes")
    return None


def _walk_images(folder: Path, name: str, real_root: Path, follow_symlinks: bool,
                 classes: dict, seen: set):
    """Yield (file, reason-or-None) under the folder of class `name`, sorted, recursing.

    Symlinks that stay inside the dataset are followed; ones that lead outside are listed as
    skipped unless `follow_symlinks`. Links to the dataset folder or into another class are
    skipped with a reason (see `_clash`); `seen` (resolved folders) stops loops in the class.
    """
    for entry in _scandir(folder):
        path = Path(entry.path)
        link = entry.is_symlink()
        problem = _link_problem(path) if link else None
        if problem:
            yield path, problem
        elif link and not follow_symlinks and not _inside(real_root, path):
            yield path, "symlink leading outside the dataset (pass --follow-symlinks to use it)"
        elif entry.is_dir():  # follows symlinks, like is_file below
            real = _resolve(path)
            reason = "symlink loop" if real is None else _clash(real, name, real_root, classes)
            if reason:
                yield path, reason
            elif real not in seen:  # else a loop, or a second link to a folder already read
                seen.add(real)
                yield from _walk_images(path, name, real_root, follow_symlinks, classes, seen)
        elif not entry.is_file():
            yield path, "not a regular file"
        elif path.suffix.lower() not in IMAGE_EXTENSIONS:
            yield path, "not an image file (unknown extension)"
        else:
            yield path, None


def _class_folders(root: Path, real_root: Path, follow_symlinks: bool):
    """Return (class folders, skipped, loose file names, {resolved class folder: name}) for the
    top level of an image folder.

    A class folder that is a symlink to the dataset folder, or to (or into) another class
    folder, is skipped: its files would be read twice, under two classes.
    """
    entries, skipped, loose = [], [], []
    for entry in _scandir(root):
        path = Path(entry.path)
        problem = _link_problem(path) if entry.is_symlink() else None
        if problem:
            skipped.append((entry.name, problem))
        elif not entry.is_dir():
            loose.append(entry.name)
        elif entry.is_symlink() and not follow_symlinks and not _inside(real_root, path):
            skipped.append((entry.name, "symlink leading outside the dataset "
                                        "(pass --follow-symlinks to use it)"))
        else:
            entries.append((path, entry.is_symlink()))
    if not entries and not skipped:
        if not loose:
            raise UsageError(f"{root}: the folder is empty; point at a folder of class subfolders")
        raise UsageError(
            f"{root}: no class subfolders found; put each image in a subfolder named after its "
            "class, e.g. cat/001.png and dog/002.png"
        )
    # Real folders claim their place first, then the links in name order.
    classes, folders = {}, []
    for path, _link in sorted(entries, key=lambda e: e[1]):
        real = _resolve(path)
        reason = "symlink loop" if real is None else _clash(real, path.name, real_root, classes)
        if reason:
            skipped.append((path.name, reason))
            continue
        folders.append(path)
        if real.is_relative_to(real_root):  # (links outside are read as given)
            classes[real] = path.name
    return sorted(folders), skipped, loose, classes


def _refuse_strict(root: Path, skipped: list, more: tuple[str, str] = ("", "")) -> None:
    rel, reason = skipped[0]
    raise UsageError(
        f"{root}: {more[0]}{len(skipped)} file(s) cannot be used, first {rel}: {reason}; fix or "
        f"remove them, or drop --strict to skip them{more[1]}"
    )


def _memory_bytes() -> int | None:
    """This machine's physical memory in bytes, or None where it cannot be told."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().total)


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _allocate_pixels(n: int, channels: int, size: int, *, chosen: bool) -> np.ndarray:
    """The (n, channels, size, size) uint8 array, refused when it cannot sensibly fit.

    The pixels may take MEMORY_SHARE of the machine's memory (later steps hold float copies of
    parts of them), plus room to decode one image at that size.
    """
    per_side = n * channels + DECODE_BYTES_PER_PIXEL
    memory = _memory_bytes()
    what = f"--image-size {size}" if chosen else f"the default image size {size}"
    if memory is not None and per_side * size * size > MEMORY_SHARE * memory:
        fits = math.isqrt(int(MEMORY_SHARE * memory) // per_side)
        how = (f"pass --image-size {fits} or less" if fits >= 1 else
               "scan a subset of the images")
        raise UsageError(
            f"{what} needs {_bytes(per_side * size * size)} of memory for {n} image(s) "
            f"({n} x {channels} channel(s) x {size} x {size} bytes, and room to decode one), "
            f"more than {MEMORY_SHARE:.0%} of this machine's {_bytes(memory)}; {how}"
        )
    try:
        return np.zeros((n, channels, size, size), dtype=np.uint8)
    except MemoryError:
        raise UsageError(f"{what}: not enough memory for {n} image(s) of {size} x {size} "
                         "pixels; pass a smaller --image-size") from None


def _refuse_unreadable(file: Path, root: Path) -> None:
    raise UsageError(f"{file}: permission denied; make the dataset readable (chmod -R u+rX "
                     f"{root}) and retry")


def load_image_folder(
    root: Path,
    *,
    image_size: int | None = None,
    strict: bool = False,
    follow_symlinks: bool = False,
    progress=None,
) -> Dataset:
    """Read ``root/<class>/<file>`` (ImageFolder layout) into a compact uint8 array.

    Unusable files (corrupt, truncated, zero-byte, not images, huge, symlinks leading outside)
    are skipped and listed in ``skipped``; with ``strict`` they are refused instead.

    >>> ds = load_image_folder(Path("datasets/digits-noisy"))
    >>> ds.ids[0], ds.inputs.shape[1:]
    ('0/digit-0000.png', (1, 8, 8))
    """
    root = Path(root)
    if image_size is not None and image_size < 1:
        raise UsageError(f"image_size must be at least 1 pixel (got {image_size})")
    real_root = root.resolve()
    subdirs, skipped, loose, classes = _class_folders(root, real_root, follow_symlinks)
    candidates = _image_files(root, subdirs, real_root, follow_symlinks, classes, skipped)
    headers = _read_headers(root, candidates, skipped, progress)
    if strict and skipped:
        # Files are decoded only after the headers, so some may fail later: the count is exact
        # only when no image is left to decode.
        _refuse_strict(root, skipped, more=("at least ", "; files whose pixel data is "
                                            "damaged are found only when decoded, after that")
                       if headers else ("", ""))
    if not headers:
        raise UsageError(f"{root}: none of the image files could be read "
                         f"(first problem: {skipped[0][0]}: {skipped[0][1]})")

    explicit_size = image_size is not None
    if image_size is None:
        image_size = int(min(MAX_IMAGE_SIZE, np.median([h[4] for h in headers])))
    color = any(h[3] not in GRAY_MODES for h in headers)
    channels = 3 if color else 1
    pixels = _allocate_pixels(len(headers), channels, image_size, chosen=explicit_size)
    decoded_from = len(skipped)
    keep = _decode_into(pixels, root, headers, skipped, color=color, progress=progress)
    if strict and not keep.all():
        _refuse_strict(root, skipped[decoded_from:])
    headers = [h for h, k in zip(headers, keep, strict=True) if k]
    ds = Dataset(
        path=str(root), kind="images",
        ids=np.array([h[0] for h in headers], dtype=object),
        labels=np.array([h[2] for h in headers], dtype=np.int64),
        classes=tuple(p.name for p in subdirs), inputs=pixels[keep],
        files=np.array([str(h[1]) for h in headers], dtype=object), skipped=tuple(skipped),
        warnings=_image_warnings(root, headers, loose, skipped, color=color, size=image_size),
        info={"image_size": image_size, "channels": channels},
    )
    return _check_classes(ds, where=str(root))


def _image_files(root: Path, subdirs, real_root: Path, follow_symlinks: bool, classes: dict,
                 skipped: list) -> list:
    """(id, file, label) of every image file in the class folders; the rest go to `skipped`."""
    candidates = []
    for label, class_dir in enumerate(subdirs):
        seen = {class_dir.resolve()}
        for file, reason in _walk_images(class_dir, class_dir.name, real_root, follow_symlinks,
                                         classes, seen):
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
    return candidates


def _read_headers(root: Path, candidates, skipped: list, progress) -> list:
    """(id, file, label, mode, long side) of each readable image; unreadable ones go to
    `skipped` before any pixels are decoded."""
    from PIL import Image

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
                        raise ValueError(f"image too large ({w}x{h} pixels, limit "
                                         f"{MAX_IMAGE_PIXELS}), possible decompression bomb")
                    headers.append((rel, file, label, im.mode, max(w, h)))
            except PermissionError:
                _refuse_unreadable(file, root)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not fatal
                skipped.append((rel, f"unreadable image: {_short(exc, file)}"))
    return headers


def _decode_into(pixels: np.ndarray, root: Path, headers, skipped: list, *, color: bool,
                 progress) -> np.ndarray:
    """Decode each image into its row of `pixels`; return the mask of those that decoded."""
    keep = np.ones(len(headers), dtype=bool)
    for i, (rel, file, _label, _mode, _side) in enumerate(
        _track(progress, headers, "decoding images")
    ):
        try:
            pixels[i] = _decode(file, pixels.shape[-1], color)
        except PermissionError:
            _refuse_unreadable(file, root)
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
            keep[i] = False
            skipped.append((rel, f"unreadable image: {_short(exc, file)}"))
    return keep


def _image_warnings(root: Path, headers, loose, skipped, *, color: bool,
                    size: int) -> tuple[str, ...]:
    warn = []
    if loose:
        names = ", ".join(map(repr, loose[:5])) + (", ..." if len(loose) > 5 else "")
        warn.append(f"{len(loose)} file(s) at the top of {root} are not in a class folder and "
                    f"were ignored ({names}); move each into the folder of its class to use it")
    if skipped:
        warn.append(f"skipped {len(skipped)} file(s) that are not usable images "
                    "(listed in summary.json; --strict refuses instead)")
    modes = sorted({h[3] for h in headers})
    if len(modes) > 1:
        warn.append(f"images have mixed modes ({', '.join(modes)}); all converted to "
                    f"{'RGB' if color else 'grayscale'}")
    sides = {h[4] for h in headers}
    if len(sides) > 1:
        warn.append(f"images have mixed sizes ({min(sides)} to {max(sides)} pixels on the long "
                    f"side); all padded and resized to {size}x{size}")
    return tuple(warn)


def _decode(file: Path, size: int, color: bool) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(file) as im:
        im.load()
        im = to_gray_or_rgb(im).convert("RGB" if color else "L")
        im = ImageOps.pad(im, (size, size), method=Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    return arr.transpose(2, 0, 1) if color else arr[None]


def to_gray_or_rgb(im):
    """A Pillow image of any mode as L or RGB: deep grey scaled to 8 bits by its own range,
    transparency laid onto white.

    >>> from PIL import Image
    >>> to_gray_or_rgb(Image.new("LA", (2, 2), (0, 0))).getpixel((0, 0))
    (255, 255, 255)
    """
    from PIL import Image

    if im.mode in HIGH_DEPTH_MODES:
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), mode="L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("L" if im.mode in ("1", "L") else "RGB")


def _short(exc: Exception, file: Path | None = None) -> str:
    text = str(exc) or type(exc).__name__
    if file is not None:  # the id already names the file; keep the reason short
        text = text.replace(f" {str(file)!r}", "").replace(str(file), "the file")
    return text if len(text) < 200 else text[:197] + "..."


def _track(progress, items, description):
    return progress.track(items, description=description) if progress is not None else items


# ---------------------------------------------------------------------------------------------
# Tables


def read_table(path: Path, *, encoding: str = "utf-8"):
    """Read .csv/.tsv/.parquet/.jsonl into a DataFrame, with a clear message when it cannot.

    >>> read_table(Path("datasets/wine-noisy.csv")).shape
    (178, 15)
    """
    return _read_table(Path(path), encoding=encoding)


def separator(path: str | os.PathLike) -> str:
    """The field separator of a csv or tsv file, told by its extension.

    >>> separator("data.tsv"), separator("data.csv")
    ('\\t', ',')
    """
    return "\t" if Path(path).suffix.lower() == ".tsv" else ","


def read_as_text(path: str | os.PathLike, *, encoding: str = "utf-8", header: bool = True):
    """Every cell of a csv/tsv file as the text written there ('007' stays '007', 'NA' is text).

    Without `header` the header is the first row, with its names as written (pandas would
    rename a repeated name).

    >>> read_as_text("datasets/wine-noisy.csv")["label"].iloc[0]
    'class_0'
    """
    import pandas as pd

    return pd.read_csv(path, sep=separator(path), header=0 if header else None, dtype=str,
                       keep_default_na=False, na_filter=False, encoding=encoding,
                       low_memory=False)


def _read_table(path: Path, *, encoding: str, as_text=lambda names: ()):
    """Read a table into a typed DataFrame; in csv/tsv files the columns `as_text(header names)`
    picks are read as the text written there ('007' stays '007', 'NA' is text, '' is missing)."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            frame = _read_csv(path, encoding=encoding, as_text=as_text)
        elif suffix == ".parquet":
            frame = _read_parquet(path)
        elif suffix == ".jsonl":
            frame = pd.read_json(path, lines=True, encoding=encoding, dtype=False)
            _refuse_repeated_keys(path, encoding=encoding)  # JSON keeps the last one silently
            _refuse_nested(path, frame)
        else:
            raise UsageError(f"{path}: unknown table type {suffix!r}; use one of "
                             f"{', '.join(TABLE_SUFFIXES)}")
    except Exception as exc:  # noqa: BLE001 - every reader's failure becomes one clear message
        raise _unreadable(path, exc, encoding=encoding) from None
    frame.columns = [str(c) for c in frame.columns]
    _refuse_duplicates(path, list(frame.columns))
    if len(frame) == 0:
        raise UsageError(f"{path}: the table has a header but no rows; add data rows")
    return frame


def _read_csv(path: Path, *, encoding: str, as_text):
    """One pandas read of a csv/tsv file: the `as_text` columns as text, the rest typed."""
    import pandas as pd
    from pandas._libs.parsers import STR_NA_VALUES  # the strings pandas reads as missing

    names = _csv_header(path, encoding=encoding)
    # pandas renames a repeated name (label, label.1): the file's own header tells.
    _refuse_duplicates(path, names)
    wanted = set(as_text(names))
    text = {i for i, name in enumerate(names) if name in wanted}
    # Columns by position: pandas names an unnamed one 'Unnamed: 2'.
    missing = {i: [""] if i in text else sorted(STR_NA_VALUES) for i in range(len(names))}
    # Numbers as written: pandas before 3.1 parses decimals to the nearest float only when asked.
    exact = {} if tuple(map(int, pd.__version__.split(".")[:2])) >= (3, 1) else {
        "float_precision": "round_trip"}
    return pd.read_csv(path, sep=separator(path), encoding=encoding, low_memory=False,
                       dtype=dict.fromkeys(text, str), keep_default_na=False,
                       na_values=missing, **exact)


def _csv_header(path: Path, *, encoding: str) -> list[str]:
    """The names in the header row of a csv/tsv file as written (pandas skips blank lines and
    a byte order mark too); [] for a file with no rows, which pandas then refuses."""
    import csv

    with open(path, encoding=encoding, newline="") as f:
        if f.read(1) != "\ufeff":
            f.seek(0)
        return next((row for row in csv.reader(f, delimiter=separator(path)) if row), [])


def _unreadable(path: Path, exc: Exception, *, encoding: str) -> UsageError:
    """The message for a table that cannot be read."""
    import pandas as pd

    suffix = path.suffix.lower()
    if isinstance(exc, UsageError):
        return exc
    if isinstance(exc, UnicodeDecodeError):
        return UsageError(
            f"{path}: cannot decode the file as {encoding} ({_where_undecodable(path, encoding)});"
            " pass --encoding with the file's encoding, e.g. --encoding latin-1 or cp1252")
    if isinstance(exc, LookupError):
        return UsageError(f"--encoding {encoding!r} is not a known text encoding; use e.g. "
                          "utf-8, latin-1 or cp1252")
    if isinstance(exc, PermissionError):
        return UsageError(f"{path}: permission denied; make it readable (chmod u+r) and retry")
    if isinstance(exc, pd.errors.EmptyDataError):
        return UsageError(f"{path}: the file is empty; it needs a header row and data rows")
    return UsageError(
        f"{path}: cannot read it as {suffix[1:]} ({_short(exc)}); check that the file is a "
        f"complete, valid {suffix[1:]} file")


def _refuse_duplicates(path: Path, names: list[str]) -> None:
    from collections import Counter

    repeated = [(n, k) for n, k in Counter(n for n in names if n != "").items() if k > 1]
    if repeated:
        listed = ", ".join(f"{n!r} ({k} times)" for n, k in repeated[:10])
        raise UsageError(
            f"{path}: duplicate column names: {listed}; a second copy would be read as another "
            "column (pandas renames it, e.g. label.1) and learned from as a feature; rename or "
            "remove the duplicate columns"
        )


def _refuse_repeated_keys(path: Path, *, encoding: str) -> None:
    """Refuse a jsonl line that gives one key twice (JSON parsers keep only the last value)."""
    import json

    # Objects as (key, value) pairs keep a repeated key; numbers left as text are cheaper.
    decoder = json.JSONDecoder(object_pairs_hook=list, parse_float=str, parse_int=str,
                               parse_constant=str)
    with open(path, encoding=encoding) as f:
        for number, line in enumerate(f, start=1):
            try:
                pairs = decoder.decode(line) if line.strip() else None
            except ValueError:  # pandas read the file; its rules decide what is valid
                continue
            if not (isinstance(pairs, list) and pairs and isinstance(pairs[0], tuple)):
                continue
            if len(dict(pairs)) < len(pairs):
                keys = [key for key, _ in pairs]
                repeated = next(k for k in keys if keys.count(k) > 1)
                raise UsageError(
                    f"{path}: line {number} has the key {repeated!r} twice; JSON keeps only "
                    "the last value, so the other would be lost unnoticed; write each key once "
                    "per line"
                )


# Arrow types that hold several values per cell, by the name the message uses.
_NESTED_TYPES = {"lists": ("is_list", "is_large_list", "is_fixed_size_list", "is_list_view",
                           "is_large_list_view"),
                 "structs": ("is_struct",), "maps": ("is_map",), "unions": ("is_union",)}


def _is(arrow_type, *tests: str) -> bool:
    """Whether pyarrow.types says `arrow_type` is any of `tests` (older pyarrow lacks some)."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return any(getattr(pa.types, t, lambda _: False)(arrow_type) for t in tests)


def _nested_kind(arrow_type) -> str | None:
    return next((kind for kind, tests in _NESTED_TYPES.items() if _is(arrow_type, *tests)),
                None)


def _read_parquet(path: Path):
    """Read a parquet file with pyarrow, refusing what the rest cannot use: repeated column
    names, columns of lists or structs, and bytes that are not UTF-8 text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    _refuse_duplicates(path, list(schema.names))
    for arrow_field in schema:
        kind = _nested_kind(arrow_field.type)
        if kind:
            raise UsageError(
                f"{path}: column {arrow_field.name!r} holds {kind} (type {arrow_field.type}); "
                "labelaudit reads scalar columns (numbers, text, booleans): flatten it into "
                "columns of its own, or drop it"
            )
    table = pq.read_table(path)
    for i, arrow_field in enumerate(table.schema):
        column = table.column(i)
        textual = _is(arrow_field.type, "is_string", "is_large_string", "is_string_view")
        binary = _is(arrow_field.type, "is_binary", "is_large_binary", "is_fixed_size_binary",
                     "is_binary_view")
        if not (textual or binary):
            continue
        try:
            if textual:
                column.validate(full=True)
            else:  # bytes that are UTF-8 text are text
                table = table.set_column(i, arrow_field.name,
                                         column.cast(pa.binary()).cast(pa.string()))
        except pa.ArrowInvalid:
            raise UsageError(
                f"{path}: column {arrow_field.name!r} holds bytes that are not UTF-8 text "
                f"(first in row {_first_not_utf8(column)}); labelaudit reads numbers and text: "
                "decode the column to text, or drop it"
            ) from None
    return table.to_pandas()


def _first_not_utf8(column) -> int | str:
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    for row, value in enumerate(column.cast(pa.binary()).to_pylist()):
        try:
            if value is not None:
                value.decode("utf-8")
        except UnicodeDecodeError:
            return row
    return "unknown"


def _refuse_nested(path: Path, frame) -> None:
    """Refuse a column of lists or objects (jsonl): labelaudit reads one value per cell."""
    import pandas as pd

    for name in frame.columns:
        series = frame[name]
        if not pd.api.types.is_object_dtype(series):
            continue
        nested = series.map(lambda v: isinstance(v, (list, dict))).to_numpy(dtype=bool)
        if nested.any():
            row = int(np.flatnonzero(nested)[0])
            kind = "lists" if isinstance(series.iloc[row], list) else "objects"
            raise UsageError(
                f"{path}: column {str(name)!r} holds {kind} (first in row {row}); labelaudit "
                "reads scalar columns (numbers, text, booleans): flatten it into keys of their "
                "own, or drop it"
            )


def _where_undecodable(path: Path, encoding: str) -> str:
    """Say where the first byte that `encoding` cannot decode is, e.g. 'line 3, byte 41'."""
    import codecs

    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                f.seek(0)
                line = f.read(bad).count(b"\n") + 1
                return f"line {line}, byte {bad}"
            offset += len(chunk)
    return "at the end of the file"


def _guess_label_column(columns, label_column: str | None) -> str | None:
    """The column named by --label-column, else the first of LABEL_CANDIDATES (any case)."""
    if label_column is not None:
        return label_column
    lower = {c.lower(): c for c in columns}
    return next((lower[c] for c in LABEL_CANDIDATES if c in lower), None)


def _choose_label_column(columns, path: Path, label_column: str | None) -> str:
    chosen = _guess_label_column(columns, label_column)
    if chosen in columns:
        return chosen
    if label_column is not None:
        raise UsageError(
            f"{path}: no column {label_column!r} (columns: {', '.join(columns)}); "
            "pass --label-column with one of these"
        )
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


def _looks_like_id(series, name) -> bool:
    """Distinct in every row and either short strings (a category seen once teaches nothing) or
    whole numbers under an id's name. Distinct measurements (floats) are ordinary features."""
    import pandas as pd

    if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
        shaped = not _is_text_column(series)
    else:  # checked before counting distinct values: a big table has many float columns
        shaped = (pd.api.types.is_integer_dtype(series)
                  and ID_NAME.fullmatch(str(name).strip()) is not None)
    return (shaped and len(series) > 1 and not series.isna().any()
            and series.nunique() == len(series))


def _class_name(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _sorted_classes(names) -> list[str]:
    """Sort class names numerically when they are all numbers ('2' before '10'), else as text."""
    distinct = set(names)
    numbers = {n: _number(n) for n in distinct}
    if all(v is not None for v in numbers.values()):
        return sorted(distinct, key=lambda n: (numbers[n], n))
    return sorted(distinct)


def _as_number(value) -> float | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.number)):
        return float(value)
    return _number(value.strip()) if isinstance(value, str) else None


def _absurd(values: np.ndarray) -> np.ndarray:
    """Mask of values more than ABSURD_SPREADS robust spreads from the column's median.

    The spread is the interquartile range or, for a column that is mostly one value, the median
    distance of the other values: a value a million spreads away is a sentinel or a typo, and it
    would squash every other value of the column to one number once scaled (or overflow).
    """
    finite = values[np.isfinite(values)]
    if len(finite) < 3:
        return np.zeros(len(values), dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):
        low, median, high = np.percentile(finite, [25, 50, 75])
        spread = high - low
        distance = np.abs(values - median)
        if not spread > 0:
            off = distance[np.isfinite(distance) & (distance > 0)]
            spread = np.median(off) if len(off) else 0.0
        if not 0 < spread < np.inf:
            return np.zeros(len(values), dtype=bool)
        return np.isfinite(values) & (distance > ABSURD_SPREADS * spread)


def _clean_features(X, warn: list) -> None:
    """Make feature columns usable in place: mostly-numeric text to numbers, inf and absurd
    numbers (see `_absurd`) to missing."""
    import pandas as pd

    for col in X.columns:
        series = X[col]
        if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
            present = series.dropna()
            numbers = present.map(_as_number)
            bad = present[numbers.isna()]
            if len(present) and not len(bad) and pd.api.types.is_object_dtype(series):
                X[col] = pd.to_numeric(series, errors="coerce")  # numbers stored as objects
            elif 0 < len(bad) <= NOT_NUMBER_SHARE * len(present):
                examples = ", ".join(repr(str(v)) for v in bad.unique()[:3])
                warn.append(f"column {col!r}: {len(bad)} value(s) are not numbers ({examples}); "
                            "treated as missing")
                X[col] = series.map(_as_number).astype(np.float64)
            elif present.map(type).nunique() > 1:
                warn.append(f"column {col!r} mixes types; treated as categorical text")
                X[col] = series.map(lambda v: v if v is None or v != v else str(v))
        if pd.api.types.is_float_dtype(X[col]):
            infinite = np.isinf(X[col].to_numpy(dtype=np.float64))
            if infinite.any():
                warn.append(f"column {col!r}: {int(infinite.sum())} infinite value(s); treated "
                            "as missing")
                X.loc[infinite, col] = np.nan
        if pd.api.types.is_numeric_dtype(X[col]) and not pd.api.types.is_bool_dtype(X[col]):
            values = X[col].to_numpy(dtype=np.float64, na_value=np.nan)
            absurd = _absurd(values)
            if absurd.any():
                examples = ", ".join(f"{v:g}" for v in np.unique(values[absurd])[:3])
                warn.append(f"column {col!r}: {int(absurd.sum())} value(s) are absurdly far from "
                            f"the others ({examples}: over {ABSURD_SPREADS:,.0f} times the "
                            "column's spread from its median); treated as missing")
                X[col] = np.where(absurd, np.nan, values)


def load_table(
    path: Path,
    *,
    kind: str | None = None,
    label_column: str | None = None,
    text_column: str | None = None,
    id_column: str | None = None,
    encoding: str = "utf-8",
) -> Dataset:
    """Read a table; a long-string feature column (or ``text_column``) makes it a text dataset.

    Rows without a label are dropped and listed in ``skipped``. In csv/tsv files the label, id
    and text columns are read as the text written there: '007' stays '007', 'NA' is a class.

    >>> ds = load_table(Path("datasets/wine-noisy.csv"))
    >>> ds.kind, ds.label_column
    ('tabular', 'label')
    """
    frame = _read_table(path, encoding=encoding, as_text=lambda names: (
        _guess_label_column(names, label_column), id_column, text_column))
    label_column = _choose_label_column(list(frame.columns), path, label_column)
    _check_columns(frame, path, label_column, id_column=id_column, text_column=text_column)
    ids = _ids(frame, path, id_column)
    warn, skipped = [], []
    missing = frame[label_column].isna()
    if missing.all():
        raise UsageError(f"{path}: label column {label_column!r} is empty in every row; pass "
                         "--label-column with the column that holds the classes")
    if missing.any():
        warn.append(f"dropped {int(missing.sum())} row(s) with no label in {label_column!r} "
                    "(listed in summary.json)")
        skipped = [(i, f"no label in {label_column!r}") for i in ids[missing]]
    keep = ~missing.to_numpy()
    frame, ids = frame[keep], ids[keep]
    classes, labels = _class_labels(frame[label_column].tolist(), path, label_column)

    features = [c for c in frame.columns if c not in (label_column, id_column)]
    if not features:
        raise UsageError(f"{path}: no feature columns besides the label; nothing to learn from")
    text_column = _choose_text_column(frame, features, path, kind=kind, text_column=text_column)
    common = dict(path=str(path), ids=ids.to_numpy(dtype=object), labels=labels,
                  classes=tuple(classes), label_column=label_column, skipped=tuple(skipped))
    if text_column is not None:
        texts = frame[text_column].map(lambda v: "" if v is None or v != v else str(v))
        ds = Dataset(kind="text", inputs=texts.to_numpy(dtype=object), text_column=text_column,
                     warnings=tuple(warn), **common)
    else:
        # (Text datasets learn from the text column alone.)
        warn.extend(f"column {c!r} has a different value in every row, like an id, and is used "
                    f"as a feature; if it is an id, pass --id-column {c} or drop the column"
                    for c in features if _looks_like_id(frame[c], c))
        X = frame[features].reset_index(drop=True)
        _clean_features(X, warn)
        ds = Dataset(kind="tabular", inputs=X, warnings=tuple(warn), **common)
    return _check_classes(ds, where=str(path))


def _check_columns(frame, path: Path, label_column: str, *, id_column, text_column) -> None:
    """Refuse an --id-column or --text-column the table lacks, or an id that is the label."""
    for name, col in (("--id-column", id_column), ("--text-column", text_column)):
        if col is not None and col not in frame.columns:
            raise UsageError(f"{path}: no column {col!r} for {name} "
                             f"(columns: {', '.join(frame.columns)})")
    if id_column == label_column:
        raise UsageError(f"{path}: --id-column and the label column are both {id_column!r}; "
                         "name two different columns")


def _ids(frame, path: Path, id_column: str | None):
    """Each row's id as text: the --id-column value, else the row number."""
    import pandas as pd

    if id_column is None:
        return pd.Series(np.arange(len(frame)).astype(str), index=frame.index)
    ids = frame[id_column]
    if ids.isna().any():
        raise UsageError(f"{path}: id column {id_column!r} has empty values (first in row "
                         f"{int(np.flatnonzero(ids.isna())[0])}); every row needs an id")
    ids = ids.map(str)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise UsageError(
            f"{path}: id column {id_column!r} has duplicate values ({len(dup)} rows, first "
            f"{dup.iloc[0]!r}); ids must be unique, or drop --id-column to use row numbers"
        )
    return ids


def _class_labels(raw_labels: list, path: Path, label_column: str):
    """(class names, label of each row): the classes sorted, refused when they cannot be labels."""
    names = [_class_name(v) for v in raw_labels]
    first_value = {}
    for value, name in zip(raw_labels, names, strict=True):
        if first_value.setdefault(name, value) != value:  # 1 and '1'; 1 and 1.0 are one class
            raise UsageError(f"{path}: label values of {label_column!r} collide when written as "
                             f"text ({first_value[name]!r} and {value!r}); make the label "
                             "column one type")
    classes = _sorted_classes(names)
    if len(classes) < 2:
        raise UsageError(
            f"{path}: label column {label_column!r} has only one class ({classes[0]!r}); "
            "an audit needs at least two classes; check --label-column"
        )
    if len(classes) == len(names):
        raise UsageError(
            f"{path}: every value of {label_column!r} is unique ({len(names)} rows), so it looks "
            "like an id, not a label; pass --label-column with the column that holds the classes"
        )
    lookup = {c: i for i, c in enumerate(classes)}
    return classes, np.array([lookup[n] for n in names], dtype=np.int64)


def _choose_text_column(frame, features, path: Path, *, kind, text_column):
    """The text column: the one named, else the only long-string feature (never for tabular)."""
    if text_column is None and kind != "tabular":
        texts = [c for c in features if _is_text_column(frame[c])]
        if len(texts) == 1:
            text_column = texts[0]
        elif len(texts) > 1 and kind == "text":
            raise UsageError(f"{path}: several text columns ({', '.join(texts)}); pass "
                             "--text-column NAME")
    if kind == "text" and text_column is None:
        raise UsageError(f"{path}: no text column found; pass --text-column NAME")
    return text_column


def _check_classes(ds: Dataset, *, where: str) -> Dataset:
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
