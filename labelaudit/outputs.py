"""Write a report folder so that an interrupted or failed run never leaves a half-written one,
and never removes anything that labelaudit did not write.

Everything is written into a staging folder beside --out, which then replaces --out in two
renames. A run killed before the renames leaves only a hidden staging folder, which the next run
removes; a run killed between them leaves the earlier report moved aside, and the next run puts it
back.

An existing --out counts as a report only when its manifest (MANIFEST, written last into every
report) lists what labelaudit wrote there, and only the entries it lists are replaced: anything
else in the folder is carried over into the new report, so a mistyped --out can never wipe
somebody's folder. A folder with anything in it but no such manifest is refused, whatever it holds.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import UsageError

# Hidden names beside --out; the pid tells a dead run's leftovers from a live run's work.
STAGING = ".{name}.labelaudit-staging-{pid}"
ASIDE = ".{name}.labelaudit-old-{pid}"
MANIFEST = ".labelaudit-manifest.json"  # inside a report: the entries labelaudit wrote
KEPT = ("cache",)  # subfolders of --out that live across runs
REPORT_FILES = ("issues.csv", "history.csv", "summary.json", "report.html")  # a scan's report


def check_out(out: str | os.PathLike, *, inputs=(), writes=()) -> None:
    """Refuse an --out that would write into an input, swallow one, or replace what labelaudit
    did not write: a folder without its manifest, or a file of yours named like one in `writes`.

    Whether --out can be written is check_writable's question.

    >>> check_out("datasets", inputs=["datasets/wine-noisy.csv"])
    Traceback (most recent call last):
    labelaudit.errors.UsageError: --out datasets holds the dataset file datasets/wine-noisy.csv, \
and a report replaces its folder; choose a new folder, e.g. --out ./wine-noisy.labelaudit
    """
    out = Path(out)
    target = out.resolve()
    for data in map(Path, inputs):
        real = data.resolve()
        if real.is_dir():
            refuse_inside(out, data)
        if target in real.parents or target == real:
            what = "folder" if real.is_dir() else "file"
            raise UsageError(f"--out {out} holds the dataset {what} {data}, and a report replaces "
                             f"its folder; choose a new folder, e.g. --out {_example(data)}")
    if os.path.exists(target) and not target.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; choose another --out")
    if target.is_dir():
        _refuse_overwriting(out, replaceable(out), writes)


def refuse_inside(out: str | os.PathLike, data: str | os.PathLike, *,
                  example: str | None = None) -> None:
    """Refuse an --out that is the dataset `data` or lies inside it: writing there would change
    the input.

    >>> refuse_inside("datasets/wine-noisy.csv/report", "datasets/wine-noisy.csv")
    Traceback (most recent call last):
    labelaudit.errors.UsageError: --out datasets/wine-noisy.csv/report is inside the dataset \
datasets/wine-noisy.csv; choose a folder outside it, e.g. --out ./wine-noisy.labelaudit
    """
    out, data = Path(out), Path(data)
    target, real = out.resolve(), data.resolve()
    if target == real or real in target.parents:
        what = "dataset folder" if real.is_dir() else "dataset"
        raise UsageError(f"--out {out} is inside the {what} {data}; choose a folder outside it, "
                         f"e.g. --out {example or _example(data)}")


def _example(data: Path) -> str:
    """The --out a scan of `data` writes by default, to suggest in a refusal."""
    from .settings import default_out

    return f"./{default_out(data)}"


def check_writable(path: str | os.PathLike, *, option: str, advice: str | None = None,
                   renamed: bool = False) -> None:
    """Refuse a folder that cannot be created or written, so a run fails before its work.

    A missing `path` must be creatable in the nearest folder above it; a folder that is
    `renamed` into place (--out) needs its parent writable too.

    >>> check_writable("datasets/wine-noisy.csv/report", option="--out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    labelaudit.errors.UsageError: --out .../report cannot be written: .../wine-noisy.csv is a \
file, not a folder; choose another --out
    """
    path = Path(path).absolute()
    advice = advice or f"choose another {option}"
    # os.path.exists says False where Path.exists raises: under a folder we may not search.
    nearest = next(p for p in (path, *path.parents) if os.path.exists(p))
    if not nearest.is_dir():
        raise UsageError(f"{option} {path} cannot be written: {nearest} is a file, not a folder; "
                         f"{advice}")
    needed = [nearest, path.parent] if nearest == path and renamed else [nearest]
    for folder in needed:
        if not os.access(folder, os.W_OK | os.X_OK):  # root passes, except on read-only mounts
            raise UsageError(f"{option} {path} cannot be written: {folder} is not writable "
                             f"(chmod u+w {folder}, if it is yours); {advice}")


def replaceable(out: str | os.PathLike) -> set[str]:
    """The entries of `out` that a new report replaces: those its manifest lists.

    A missing or empty folder (the cache aside) has none. Raises UsageError for a folder that
    holds anything else but no manifest labelaudit wrote: it is no report of ours.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "report"
    >>> with staged(out) as folder:
    ...     _ = (folder / "summary.json").write_text("{}")
    >>> replaceable(out)
    {'summary.json'}
    """
    out = Path(out)
    if not out.is_dir():
        return set()
    names = {p.name for p in out.iterdir()}
    if not names - set(KEPT):  # a cache alone is no report, and is carried over
        return set()
    try:
        return _read_manifest(out)
    except FileNotFoundError:
        older = (" (if it is a report of an older labelaudit, which wrote no manifest, delete it "
                 "yourself)") if "summary.json" in names else ""
        raise UsageError(f"--out {out} is not a labelaudit report: a folder that is neither empty "
                         f"nor an earlier labelaudit report (one with a {MANIFEST}) is never "
                         f"replaced; choose a new or empty folder{older}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"--out {out} is not a labelaudit report: its {MANIFEST} is not one "
                         f"labelaudit wrote ({exc}), so nothing in it is replaced; choose a new "
                         "or empty folder") from None


def _read_manifest(folder: Path) -> set[str]:
    """The entries a manifest lists; ValueError when labelaudit cannot have written it."""
    path = folder / MANIFEST
    if path.is_symlink():
        raise ValueError("it is a symlink")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError("it nests too deep to be one") from None
    files = manifest.get("files") if isinstance(manifest, dict) and \
        manifest.get("tool") == "labelaudit" else None
    if not isinstance(files, list):
        raise ValueError("it holds no list of labelaudit's files")
    odd = [name for name in files if not _plain(name)]
    if odd:
        raise ValueError(f"it lists {odd[0]!r}, which is no entry directly inside the folder")
    return set(files)


def _plain(name) -> bool:
    """Whether `name` names an entry directly inside a folder, the only kind a report writes."""
    return (isinstance(name, str) and name not in ("", ".", "..", MANIFEST) and "\0" not in name
            and PurePosixPath(name).name == name and PureWindowsPath(name).name == name)


def _refuse_overwriting(out: Path, ours: set[str], writes) -> None:
    """Refuse to write over an entry of `out` that its manifest does not list."""
    theirs = sorted(name for name in writes if name not in ours and os.path.lexists(out / name))
    if theirs:
        raise UsageError(f"--out {out} holds {', '.join(theirs)}, which labelaudit did not write "
                         "and the new report would overwrite; move it elsewhere or choose another "
                         "--out")


def recover(out: Path) -> list[Path]:
    """Undo what killed runs left beside `out`; return the leftovers dealt with.

    A staging folder that still holds entries carried over from `out` is emptied back into
    `out` first, or, where one cannot go back, left in place for a person to look at.

    >>> import tempfile
    >>> recover(Path(tempfile.mkdtemp()) / "report")
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
            elif restore:
                shutil.rmtree(leftover, ignore_errors=True)  # it holds only what we wrote
            elif not _discard(leftover, out):
                continue
            handled.append(leftover)
    for name in KEPT:  # half-written entries of a killed run: "<entry>.tmp<pid>"
        for leftover in sorted((out / name).rglob("*.tmp*")) if (out / name).is_dir() else []:
            pid = leftover.suffix[len(".tmp"):]
            if pid.isdigit() and not _alive(int(pid)) and leftover.is_file():
                leftover.unlink()
                handled.append(leftover)
    return handled


def _discard(staging: Path, out: Path) -> bool:
    """Remove a staging folder, first moving back into `out` what publish carried over into it;
    False, with the folder kept, when an entry cannot go back."""
    if (staging / MANIFEST).exists():  # publish began: entries it does not list are carried
        try:
            ours = _read_manifest(staging)
        except (OSError, ValueError):
            return False
        stuck = False
        for entry in sorted(staging.iterdir()):
            if entry.name in ours or entry.name == MANIFEST:
                continue
            if not out.is_dir() or os.path.lexists(out / entry.name):
                stuck = True
            else:
                entry.rename(out / entry.name)
        if stuck:
            return False
    shutil.rmtree(staging, ignore_errors=True)
    return True


@contextmanager
def staged(out: str | os.PathLike):
    """Yield a fresh staging folder; on success it becomes `out`, on failure it is removed.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "report"
    >>> with staged(out) as folder:
    ...     _ = (folder / "summary.json").write_text("{}")
    >>> sorted(p.name for p in out.iterdir())
    ['.labelaudit-manifest.json', 'summary.json']
    """
    out = Path(out).absolute()
    check_writable(out, option="--out", renamed=True)
    replaceable(out)  # refuses a folder that is no report before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    staging = out.parent / STAGING.format(name=out.name, pid=os.getpid())
    if staging.exists():  # recover() keeps one only when it holds files it could not put back
        raise UsageError(f"{staging} holds files that a killed run could not put back into "
                         f"{out}; move them where they belong, delete the folder, and retry")
    staging.mkdir()
    try:
        yield staging
        publish(staging, out)
    except BaseException:  # Ctrl-C included: the earlier report must come back whole
        recover(out)  # this run's own staging and aside folders too, carried entries first
        raise


def publish(staging: Path, out: Path) -> None:
    """Swap a complete staging folder in as `out`, replacing only the entries labelaudit wrote.

    Everything else in `out` is carried over into the new report first. Its manifest is written
    before, so a run killed on the way leaves carried entries told apart from its own, and
    recover() moves them back.
    """
    written = sorted(p.name for p in staging.iterdir())
    draft = staging / f"{MANIFEST}.tmp"  # written whole or not at all
    write_json(draft, {"tool": "labelaudit", "files": written})
    draft.rename(staging / MANIFEST)
    aside = out.parent / ASIDE.format(name=out.name, pid=os.getpid())
    if out.exists():
        ours = replaceable(out)  # asked again: the folder may have changed while we worked
        _refuse_overwriting(out, ours, written)
        for entry in sorted(out.iterdir()):
            if entry.name != MANIFEST and entry.name not in ours:
                entry.rename(staging / entry.name)
        out.rename(aside)
    staging.rename(out)
    shutil.rmtree(aside, ignore_errors=True)


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
    RFC 4180's CRLF line ending, which makes every field holding CR or LF quoted. A one-column
    file whose cell is empty or blank would be a blank line, which readers skip: such files
    quote every field.

    >>> import io, pandas as pd
    >>> buffer = io.StringIO()
    >>> write_csv(pd.DataFrame({"id": ["a\\rb", " ", "c"]}), buffer)
    >>> pd.read_csv(io.StringIO(buffer.getvalue()))["id"].tolist()
    ['a\\rb', ' ', 'c']
    """
    import csv

    text = frame.select_dtypes(include=["object", "string"])
    carriage = any(text[c].astype(str).str.contains("\r", regex=False).any() for c in text)
    carriage = carriage or any("\r" in str(c) for c in frame.columns)
    blank_line = frame.shape[1] == 1 and frame.iloc[:, 0].astype(str).str.strip().eq("").any()
    # Readers drop a byte-order mark at the start of a file, even one that begins a name.
    mark = len(frame.columns) > 0 and str(frame.columns[0]).startswith("\ufeff")
    frame.to_csv(path, sep=sep, index=False, encoding=encoding,
                 lineterminator="\r\n" if carriage else "\n",
                 quoting=csv.QUOTE_ALL if blank_line or mark else csv.QUOTE_MINIMAL)
