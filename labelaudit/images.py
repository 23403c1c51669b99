"""Read an image folder (one subfolder per class) into a `Dataset` of uint8 pixels."""

from __future__ import annotations

import errno
import math
import os
import warnings as _warnings
from pathlib import Path

import numpy as np

from .dataset import Dataset, check_classes, short_reason
from .decisions import CHANGES_FILE, is_change_log
from .errors import UsageError

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
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
            if not (entry.name == CHANGES_FILE and is_change_log(path)):  # apply's own, expected
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
    return check_classes(ds, where=str(root))


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
                skipped.append((rel, f"unreadable image: {short_reason(exc, file)}"))
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
            skipped.append((rel, f"unreadable image: {short_reason(exc, file)}"))
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


def _track(progress, items, description):
    return progress.track(items, description=description) if progress is not None else items
