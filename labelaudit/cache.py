"""A folder of finished folds, keyed by the data and the settings that change the model.

Re-running a scan to change thresholds, top-k or the report reuses every fold; an interrupted
scan resumes from the folds it finished. Entries are written to a temporary name and renamed,
so a killed run never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

FORMAT = 2  # bump when FoldResult or the training changes incompatibly


def fingerprint(X, y) -> str:
    """sha256 of the model inputs and labels (dense, uint8 images or scipy sparse)."""
    digest = hashlib.sha256()
    parts = (X.data, X.indices, X.indptr) if hasattr(X, "indptr") else (X,)
    for part in (*parts, np.asarray(y)):
        arr = np.ascontiguousarray(part)
        digest.update(f"{arr.dtype}{arr.shape}".encode())
        digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()


def cache_key(data_fingerprint: str, model_settings, *, cv: int, seed: int) -> str:
    from . import __version__

    payload = {"data": data_fingerprint, "model": asdict(model_settings), "cv": cv,
               "seed": seed, "format": FORMAT, "version": __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


class FoldCache:
    """get/put finished folds under `root/key/`; a None root disables caching."""

    def __init__(self, root: str | os.PathLike | None, key: str):
        self.folder = Path(root) / key if root is not None else None

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.joblib"

    def get(self, name: str):
        if self.folder is None or not self._path(name).exists():
            return None
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
