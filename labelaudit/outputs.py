"""Write a report folder so that an interrupted or failed run never leaves a half-written one.

Everything is written into a staging folder beside --out, which then replaces --out in two
renames. A stale staging folder from a killed run is removed by the next run; an --out that was
moved aside but not replaced is put back.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

STAGING = ".{name}.labelaudit-staging"
ASIDE = ".{name}.labelaudit-old"
KEPT = ("cache",)  # subfolders of --out that live across runs


def recover(out: Path) -> None:
    """Undo what a killed run left behind beside `out`."""
    staging = out.parent / STAGING.format(name=out.name)
    aside = out.parent / ASIDE.format(name=out.name)
    if aside.exists():
        if not out.exists():
            aside.rename(out)
        else:
            shutil.rmtree(aside, ignore_errors=True)
    if staging.exists():
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def staged(out: Path):
    """Yield a fresh staging folder; on success it becomes `out`, on failure it is removed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    staging = out.parent / STAGING.format(name=out.name)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish(staging, out)


def publish(staging: Path, out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    aside = out.parent / ASIDE.format(name=out.name)
    if out.exists():
        for name in KEPT:
            if (out / name).exists() and not (staging / name).exists():
                (out / name).rename(staging / name)
        out.rename(aside)
    staging.rename(out)
    shutil.rmtree(aside, ignore_errors=True)


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n",
                    encoding="utf-8")


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
