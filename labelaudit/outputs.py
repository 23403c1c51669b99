"""Write a report folder so that an interrupted or failed run never leaves a half-written one.

Everything is written into a staging folder beside --out, which then replaces --out in two
renames. A run killed before the renames leaves only a hidden staging folder, which the next run
removes; a run killed between them leaves the earlier report moved aside, and the next run puts it
back. An existing --out is replaced only when it is empty or an earlier labelaudit report, so a
mistyped --out can never wipe somebody's folder; files a person added to a report are carried over.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from .errors import UsageError

# Hidden names beside --out; the pid tells a dead run's leftovers from a live run's work.
STAGING = ".{name}.labelaudit-staging-{pid}"
ASIDE = ".{name}.labelaudit-old-{pid}"
MANIFEST = ".labelaudit-manifest.json"  # inside a report: the entries labelaudit wrote
KEPT = ("cache",)  # subfolders of --out that live across runs


def check_out(out: str | os.PathLike, *, inputs=()) -> None:
    """Refuse an --out that would write into an input, swallow one, or replace a foreign folder.

    >>> check_out("labelaudit-report", inputs=["datasets/wine-noisy.csv"])  # doctest: +SKIP
    """
    out = Path(out)
    target = out.resolve()
    for data in map(Path, inputs):
        real = data.resolve()
        if real.is_dir() and (target == real or real in target.parents):
            raise UsageError(f"--out {out} is inside the dataset folder {data}; choose a folder "
                             "outside it, e.g. --out ./labelaudit-report")
        if target in real.parents or target == real:
            what = "folder" if real.is_dir() else "file"
            raise UsageError(f"--out {out} holds the dataset {what} {data}, and a report replaces "
                             "its folder; choose a new folder, e.g. --out ./labelaudit-report")
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; choose another --out")
    if target.is_dir() and not is_replaceable(target):
        raise UsageError(f"--out {out} is a folder that is neither empty nor an earlier labelaudit "
                         "report, and it would be replaced; choose a new or empty folder")


def is_replaceable(out: Path) -> bool:
    """Whether `out` may be replaced by a new report: missing, empty, or a labelaudit report."""
    out = Path(out)
    if not out.exists():
        return True
    if not out.is_dir():
        return False
    names = {p.name for p in out.iterdir()} - set(KEPT)  # a fold cache alone is no report
    return not names or MANIFEST in names or "summary.json" in names


def recover(out: Path) -> list[Path]:
    """Undo what killed runs left beside `out`; return the leftovers dealt with.

    >>> recover(Path("labelaudit-report"))  # doctest: +SKIP
    []
    """
    out = Path(out)
    handled = []
    for pattern, restore in ((ASIDE, True), (STAGING, False)):
        prefix = pattern.format(name=out.name, pid="")
        for leftover in sorted(out.parent.glob(f"{glob.escape(prefix)}*")):
            pid = leftover.name[len(prefix):]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            if restore and not out.exists():
                leftover.rename(out)  # killed between the two renames: the old report returns
            else:
                shutil.rmtree(leftover, ignore_errors=True)
            handled.append(leftover)
    for name in KEPT:  # half-written entries of a killed run: "<entry>.tmp<pid>"
        for leftover in sorted((out / name).rglob("*.tmp*")) if (out / name).is_dir() else []:
            pid = leftover.suffix[len(".tmp"):]
            if pid.isdigit() and not _alive(int(pid)) and leftover.is_file():
                leftover.unlink()
                handled.append(leftover)
    return handled


@contextmanager
def staged(out: str | os.PathLike):
    """Yield a fresh staging folder; on success it becomes `out`, on failure it is removed.

    >>> with staged("labelaudit-report") as folder:  # doctest: +SKIP
    ...     (folder / "summary.json").write_text("{}")
    """
    out = Path(out).absolute()
    if not is_replaceable(out):
        raise UsageError(f"--out {out} is a folder that is neither empty nor an earlier labelaudit "
                         "report; choose a new or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    staging = out.parent / STAGING.format(name=out.name, pid=os.getpid())
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        publish(staging, out)
    except BaseException:  # Ctrl-C included: the earlier report must come back whole
        shutil.rmtree(staging, ignore_errors=True)
        recover(out)
        raise


def publish(staging: Path, out: Path) -> None:
    """Swap a complete staging folder in as `out`, keeping the earlier report's extra files."""
    written = sorted(p.name for p in staging.iterdir())
    write_json(staging / MANIFEST, {"tool": "labelaudit", "files": written})
    aside = out.parent / ASIDE.format(name=out.name, pid=os.getpid())
    if out.exists():
        for entry in _carried_over(out):
            if not (staging / entry.name).exists():
                entry.rename(staging / entry.name)
        out.rename(aside)
    staging.rename(out)
    shutil.rmtree(aside, ignore_errors=True)


def _carried_over(out: Path) -> list[Path]:
    """Entries of an earlier report to keep: the cache, and files that labelaudit did not write."""
    try:
        ours = set(json.loads((out / MANIFEST).read_text(encoding="utf-8"))["files"])
    except (OSError, ValueError, KeyError, TypeError):
        ours = None  # a report from before manifests: keep only the cache
    keep = []
    for entry in sorted(out.iterdir()):
        if entry.name == MANIFEST:
            continue
        if entry.name in KEPT or (ours is not None and entry.name not in ours):
            keep.append(entry)
    return keep


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from an earlier run with the same pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json(path: Path, data) -> None:
    """Write `data` as indented JSON (numpy numbers and paths converted)."""
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n",
                    encoding="utf-8")


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_csv(frame, path, *, sep: str = ",", encoding: str = "utf-8") -> None:
    """Write `frame` so that it reads back to exactly the same cells, whatever they hold.

    Python's csv writer quotes a field only for the characters of its line terminator, so a
    lone carriage return inside a value would end the row for every reader; such files get
    RFC 4180's CRLF line ending, which makes every field holding CR or LF quoted.

    >>> import io, pandas as pd
    >>> buffer = io.StringIO()
    >>> write_csv(pd.DataFrame({"id": ["a\\rb", "c"]}), buffer)
    >>> pd.read_csv(io.StringIO(buffer.getvalue()))["id"].tolist()
    ['a\\rb', 'c']
    """
    text = frame.select_dtypes(include=["object", "string"])
    carriage = any(text[c].astype(str).str.contains("\r", regex=False).any() for c in text)
    carriage = carriage or any("\r" in str(c) for c in frame.columns)
    frame.to_csv(path, sep=sep, index=False, encoding=encoding,
                 lineterminator="\r\n" if carriage else "\n")
