"""Finished work kept on disk, at two levels, so re-running a scan costs seconds.

- Folds, keyed by the model inputs and the settings that change the model: a re-run with
  another cleanlab filter reuses every fold, and an interrupted scan resumes from the folds it
  finished.
- Whole results (the verdict, the issues table, the probabilities), keyed by the loaded
  dataset and every setting that changes the result: a re-run that changes only what is shown
  (`--top-k`, `--fail-above`, the report, `--reviewed`) loads it without even building
  features or importing cleanlab, scikit-learn or torch.

Entries are written to a temporary name and renamed, so a killed run never leaves a
half-written entry. They are pickles, which run code when loaded, so a cache is trusted data:
only a folder and entries that the current user owns are read (check_cache, FoldCache.get).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .errors import UsageError
from .settings import RESULT_FREE

FORMAT = 12  # bump when FoldResult or the training changes incompatibly
# Bump when the audit reads the same folds differently (the vote, the ranking): the results
# are computed again, the folds are not trained again.
RESULT_FORMAT = 1


def fingerprint(X, y) -> str:
    """sha256 of the model inputs and labels (dense, uint8 images or scipy sparse)."""
    digest = hashlib.sha256()
    parts = (X.data, X.indices, X.indptr) if hasattr(X, "indptr") else (X,)
    for part in (*parts, np.asarray(y)):
        arr = np.ascontiguousarray(part)
        digest.update(f"{arr.dtype}{arr.shape}".encode())
        digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()


def dataset_fingerprint(ds) -> str:
    """sha256 of what a loaded Dataset holds: kind, ids, labels, classes and inputs.

    Tables and texts are hashed row by row with pandas (`hash_pandas_object`), with the
    column names and dtypes, so the same content gives the same key wherever the file lies.
    """
    import pandas as pd

    digest = hashlib.sha256(json.dumps([ds.kind, list(ds.classes)]).encode())
    inputs = ds.inputs
    if isinstance(inputs, pd.DataFrame):
        digest.update(json.dumps([[str(c), str(t)] for c, t in inputs.dtypes.items()]).encode())
        rows = pd.util.hash_pandas_object(inputs, index=False).to_numpy()
    elif isinstance(inputs, np.ndarray) and inputs.dtype.kind in "OUS":  # texts
        rows = pd.util.hash_pandas_object(pd.Series(inputs, dtype=object), index=False).to_numpy()
    else:  # image pixels
        rows = np.ascontiguousarray(inputs)
        digest.update(f"{rows.dtype}{rows.shape}".encode())
    ids = pd.util.hash_pandas_object(pd.Series(ds.ids, dtype=object), index=False).to_numpy()
    for part in (rows, ids, np.asarray(ds.labels, dtype=np.int64)):
        digest.update(memoryview(np.ascontiguousarray(part)).cast("B"))
    return digest.hexdigest()


# Settings that name a file of the user's (or a folder of them): the key holds their content.
FILE_SETTINGS = ("pred_probs", "history", "embeddings")


def result_key(dataset_fingerprint: str, settings) -> str:
    """The result cache's key: the dataset and every setting that changes the scan's result
    (all but settings.RESULT_FREE, which says how it is computed or what is shown of it), with
    the content of the files the user brings (FILE_SETTINGS) in place of their paths.

    >>> from labelaudit.settings import ScanSettings
    >>> result_key("0" * 64, ScanSettings()) == result_key("0" * 64, ScanSettings(top_k=5))
    True
    """
    from . import __version__

    kept = {k: v for k, v in asdict(settings).items() if k not in RESULT_FREE}
    for name in FILE_SETTINGS:
        if kept.get(name) is not None:
            kept[name] = content_digest(kept[name])
    encoder = kept.get("encoder")  # a hub name, or a local model folder: then its content
    if encoder is not None and Path(encoder).expanduser().is_dir():
        kept["encoder"] = content_digest(Path(encoder).expanduser())
    payload = {"data": dataset_fingerprint, "settings": kept, "format": FORMAT,
               "result_format": RESULT_FORMAT, "version": __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def content_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes; of a folder (a TensorBoard run), of each file's relative path,
    size and modification time, so a folder of checkpoints is not read whole.

    >>> import tempfile
    >>> file = Path(tempfile.mkdtemp()) / "probs.csv"
    >>> _ = file.write_text("id,a,b\\n1,0.5,0.5\\n")
    >>> content_digest(file) == hashlib.sha256(file.read_bytes()).hexdigest()
    True
    """
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"{file.relative_to(path).as_posix()}\0{stat.st_size}\0"
                          f"{stat.st_mtime_ns}\0".encode("utf-8", "surrogatepass"))
        return digest.hexdigest()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc}); check the path and "
                         "that it is readable") from None
    return digest.hexdigest()


def cache_key(data_fingerprint: str, model_settings, *, cv: int, seed: int) -> str:
    from . import __version__

    payload = {"data": data_fingerprint, "model": asdict(model_settings), "cv": cv,
               "seed": seed, "format": FORMAT, "version": __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def check_cache(cache: str | os.PathLike, *, inputs=()) -> None:
    """Refuse, before any work, a cache folder in the dataset, another user's, or one that
    cannot be written.

    >>> check_cache("labelaudit-report/cache", inputs=["datasets/wine-noisy.csv"])
    """
    from .outputs import check_writable

    cache = Path(cache)
    target = cache.resolve()
    for data in map(Path, inputs):
        real = data.resolve()
        if target == real or real in target.parents or target in real.parents:
            raise UsageError(f"--cache {cache} overlaps the dataset {data}, which is only read; "
                             "choose a folder outside it, e.g. --cache ./labelaudit-cache, or "
                             "leave --cache out (the default is OUT/cache)")
    if target.is_dir():
        _refuse_foreign(cache, "the cache folder")
    check_writable(cache, option="--cache", advice="pass another --cache, or --no-cache")


def _refuse_foreign(path: Path, what: str) -> None:
    """Refuse to read a cache `path` that another user owns: its pickles would run their code."""
    if not hasattr(os, "geteuid"):  # Windows: no uids to compare
        return
    owner = path.stat().st_uid
    if owner != os.geteuid():
        raise UsageError(f"{what} {path} belongs to another user (uid {owner}); cached entries "
                         "are pickles, which run code when loaded, so only your own cache is "
                         "trusted: pass --no-cache, or another --cache")


class FoldCache:
    """get/put finished folds under `root/key/`; a None root disables caching."""

    def __init__(self, root: str | os.PathLike | None, key: str):
        self.folder = Path(root) / key if root is not None else None

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.joblib"

    def get(self, name: str):
        if self.folder is None or not self._path(name).exists():
            return None
        _refuse_foreign(self.folder, "the cache folder")
        _refuse_foreign(self._path(name), "the cache entry")
        import joblib

        try:
            return joblib.load(self._path(name))
        except Exception:  # noqa: BLE001 - a damaged entry is recomputed, not fatal
            return None

    def put(self, name: str, value) -> None:
        if self.folder is None:
            return
        import joblib

        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self._path(name).with_suffix(f".tmp{os.getpid()}")
        joblib.dump(value, tmp)
        os.replace(tmp, self._path(name))
