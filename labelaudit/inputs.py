"""Read what a user brings from a model of their own: out-of-fold probabilities and vectors.

Both come one row per sample, either as an .npy array already in dataset order, or as a table
keyed by sample id. Dataset order is the order of `Dataset.ids` (issues.csv's `id` column):

- tables: the file's rows, less the rows without a label (summary.json lists them as skipped);
- image folders: class folders sorted by name, files sorted by path within each, less the files
  that could not be read (also listed as skipped); ids are paths relative to the folder, e.g.
  'cat/001.png'.

A table's id column is the dataset's own id column when it has one (e.g. `sample_id`), else
`id`; its values are the ids labelaudit prints in issues.csv. Rows for samples the loader
skipped are left out. Every problem is a UsageError naming the first bad row or column.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import UsageError
from .readers import TABLE_SUFFIXES, read_table

SUFFIXES = (".npy", *TABLE_SUFFIXES)
# A row of probabilities may miss 1 by this much (relative) and is renormalised; beyond it the
# row is refused. Values may leave [0, 1] by BOUNDS_SLACK (float rounding) and are clipped.
SUM_TOLERANCE = 1e-3
BOUNDS_SLACK = 1e-6


def read_pred_probs(path: str | os.PathLike, ds) -> np.ndarray:
    """Out-of-fold probabilities (n_samples, n_classes), float32, rows in dataset order and
    columns in `ds.classes` order, every row summing to 1.

    >>> import tempfile
    >>> from labelaudit.data import load_dataset
    >>> ds = load_dataset("datasets/wine-noisy.csv", id_column="sample_id")
    >>> file = Path(tempfile.mkdtemp()) / "probs.npy"
    >>> np.save(file, np.full((ds.n_samples, 3), 1 / 3))
    >>> read_pred_probs(file, ds).shape
    (178, 3)
    """
    path = check_file(path, "--pred-probs")
    if path.suffix.lower() == ".npy":
        values = _read_npy(path, "--pred-probs", ds, columns=ds.n_classes,
                           what=f"one column per class ({ds.n_classes}: "
                                f"{_listed(ds.classes)})")
        return _probabilities(values, path, lambda i: _array_row(i, ds))
    frame, ids, where = _read_keyed(path, "--pred-probs", ds)
    values = _numbers(frame, _class_columns(frame, path, ds), path, where)
    return _probabilities(values, path, where)[align_ids(ids, ds, path=path, where=where)]


def read_embeddings(path: str | os.PathLike, ds) -> np.ndarray:
    """One vector per sample (n_samples, d), float32, rows in dataset order.

    An .npy array (n, d); a Parquet file with the id column and one column of lists (the
    vectors); or any table with the id column and one numeric column per dimension.

    >>> import tempfile
    >>> from labelaudit.data import load_dataset
    >>> ds = load_dataset("datasets/wine-noisy.csv", id_column="sample_id")
    >>> file = Path(tempfile.mkdtemp()) / "vectors.npy"
    >>> np.save(file, np.ones((ds.n_samples, 4)))
    >>> read_embeddings(file, ds).shape
    (178, 4)
    """
    path = check_file(path, "--embeddings")
    if path.suffix.lower() == ".npy":
        values = _read_npy(path, "--embeddings", ds, columns=None, what="one row per sample")
        return _finite(values, path, lambda i: _array_row(i, ds))
    if path.suffix.lower() == ".parquet" and _list_column(path) is not None:
        ids, values, where = _read_vector_column(path, ds)
    else:
        frame, ids, where = _read_keyed(path, "--embeddings", ds)
        dims = [c for c in frame.columns if c != ids.name]
        if not dims:
            raise UsageError(f"{path}: only the id column {ids.name!r}; add one numeric column "
                             "per dimension of the vectors")
        values = _numbers(frame, dims, path, where)
    return _finite(values, path, where)[align_ids(ids, ds, path=path, where=where)]


def align_ids(ids, ds, *, path: Path, where) -> np.ndarray:
    """The file row of each dataset sample, in dataset order: `values[align_ids(...)]` reorders
    a file's rows; rows for samples the loader skipped are left out.

    Refuses empty or duplicate ids, ids not in the dataset and samples the file lacks.

    >>> from labelaudit.dataset import Dataset
    >>> ds = Dataset(path="t.csv", kind="tabular", ids=np.array(["a", "b"], dtype=object),
    ...              labels=np.array([0, 1]), classes=("x", "y"), inputs=None)
    >>> align_ids(["b", "a"], ds, path=Path("p.csv"), where=str).tolist()
    [1, 0]
    """
    import pandas as pd

    ids = pd.Series(list(ids), dtype=object)
    blank = ids.isna() | (ids.map(str).str.strip() == "")
    if blank.any():
        raise UsageError(f"{path}: {where(int(np.flatnonzero(blank)[0]))} has no id; every row "
                         "needs the id of its sample")
    ids = ids.map(str)
    repeated = ids.duplicated()
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        raise UsageError(f"{path}: {where(row)} repeats the id {ids[row]!r}; give each sample "
                         "one row")
    skipped = {i for i, _ in ds.skipped}
    known = ids.isin(set(ds.ids))
    unknown = ~known & ~ids.isin(skipped)
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise UsageError(
            f"{path}: {where(row)} has the id {ids[row]!r}, which is not in the dataset "
            f"({int(unknown.sum())} such row(s)); ids are the ones in issues.csv's id column, "
            f"e.g. {_listed(ds.ids[:3])}{_id_hint(ds)}")
    position = pd.Index(ids[known]).get_indexer(ds.ids)
    if (position < 0).any():
        absent = np.flatnonzero(position < 0)
        raise UsageError(
            f"{path}: no row for the sample {ds.ids[absent[0]]!r} ({len(absent)} of "
            f"{ds.n_samples} samples missing); give every sample of the dataset a row")
    return np.flatnonzero(known.to_numpy())[position]


# -- reading ------------------------------------------------------------------------------------


def check_file(path, option: str) -> Path:
    """`path`, refused when it is not a readable file of a type `option` reads (SUFFIXES).

    >>> check_file("probs.txt", "--pred-probs")
    Traceback (most recent call last):
    labelaudit.errors.UsageError: --pred-probs probs.txt: unknown file type '.txt'; use one of \
.npy, .csv, .tsv, .parquet, .jsonl
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise UsageError(f"{option} {path}: unknown file type {path.suffix or '(none)'!r}; use "
                         f"one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise UsageError(f"{option} {path}: no such file; check the path")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{option} {path}: permission denied; make it readable (chmod u+r)")
    return path


def _read_npy(path: Path, option: str, ds, *, columns: int | None, what: str) -> np.ndarray:
    """A 2-D numeric array with a row per sample (and `columns` columns, when given)."""
    try:  # never allow_pickle: an object array would run code when loaded
        values = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise UsageError(f"{path}: an array of Python objects; save numbers, e.g. "
                             "np.save(path, probs.astype('float32'))") from None
        raise UsageError(f"{path}: cannot read it as .npy ({exc}); save it with np.save") \
            from None
    except (OSError, EOFError) as exc:
        raise UsageError(f"{path}: cannot read it as .npy ({exc}); save it with np.save") \
            from None
    if values.dtype.kind not in "biuf":
        raise UsageError(f"{path}: holds {values.dtype} values; {option} needs numbers, e.g. "
                         "np.save(path, array.astype('float32'))")
    if values.ndim != 2:
        raise UsageError(f"{path}: a {values.ndim}-D array of shape {values.shape}; {option} "
                         f"needs a 2-D array, {what} and one row per sample "
                         f"({ds.n_samples})")
    expected = (ds.n_samples, columns if columns is not None else values.shape[1])
    if values.shape != expected:
        raise UsageError(
            f"{path}: shape {values.shape}, but the dataset needs {expected}: {what} and one "
            f"row per sample in dataset order{_skipped_hint(ds)}")
    return values.astype(np.float32)


def _id_column(names, ds) -> str | None:
    """The file's id column: the dataset's own id column, else `id`; None when it has neither."""
    wanted = [c for c in (ds.id_column, "id") if c]
    return next((c for c in wanted if c in names and c not in ds.classes), None)


def _read_keyed(path: Path, option: str, ds):
    """(the table, its ids as a Series named after the id column, where(row) for messages)."""
    frame = read_table(path, as_text=lambda names: [_id_column(names, ds)])
    id_column = _id_column(list(frame.columns), ds)
    if id_column is None:
        named = f"{ds.id_column!r} (the dataset's id column) or 'id'" if ds.id_column else "'id'"
        raise UsageError(
            f"{path}: no id column (columns: {_listed(frame.columns)}); name the column of "
            f"sample ids {named}, with the ids of issues.csv's id column, or save an .npy in "
            f"dataset order")
    ids = frame[id_column].rename(id_column)
    return frame, ids, lambda row: f"row {row + 1} below the header{_id_of(ids, row)}"


def _class_columns(frame, path: Path, ds) -> list[str]:
    """The class columns in `ds.classes` order, refused unless they are exactly the classes."""
    id_column = _id_column(list(frame.columns), ds)
    others = [c for c in frame.columns if c != id_column]
    missing = [c for c in ds.classes if c not in others]
    extra = [c for c in others if c not in ds.classes]
    if missing or extra:
        said = [f"no column for the class(es) {_listed(missing)}" if missing else "",
                f"unknown column(s) {_listed(extra)}" if extra else ""]
        raise UsageError(
            f"{path}: {'; '.join(s for s in said if s)}; --pred-probs needs the id column "
            f"{id_column!r} and one column per class, named as the classes: "
            f"{_listed(ds.classes)}")
    return list(ds.classes)


def _numbers(frame, columns: list[str], path: Path, where) -> np.ndarray:
    """`frame[columns]` as float32, refusing the first empty or non-numeric cell."""
    import pandas as pd

    cells = frame[columns]
    numeric = cells.apply(lambda column: pd.to_numeric(column, errors="coerce"))
    bad = numeric.isna().to_numpy()
    if bad.any():
        row, col = np.argwhere(bad)[0]
        value = cells.iat[row, col]
        what = "is empty" if pd.isna(value) else f"holds {value!r}, not a number"
        raise UsageError(f"{path}: {where(int(row))}, column {columns[col]!r} {what}; write a "
                         "number in every cell")
    return numeric.to_numpy(dtype=np.float32)


def _list_column(path: Path) -> str | None:
    """The one column of lists in a parquet file, or None when it has none."""
    import pyarrow.parquet as pq

    from .readers import _nested_kind

    try:
        schema = pq.read_schema(path)
    except Exception:  # noqa: BLE001 - read_table words the message for an unreadable file
        return None
    lists = [f.name for f in schema if _nested_kind(f.type) == "lists"]
    if len(lists) > 1:
        raise UsageError(f"{path}: several columns of lists ({_listed(lists)}); keep the id "
                         "column and one column holding the vectors")
    return lists[0] if lists else None


def _read_vector_column(path: Path, ds):
    """(ids, vectors, where(row)) from a parquet file of an id column and a column of lists."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    vectors = _list_column(path)
    id_column = _id_column(table.column_names, ds)
    others = [c for c in table.column_names if c not in (vectors, id_column)]
    if id_column is None or others:
        raise UsageError(
            f"{path}: columns {_listed(table.column_names)}; a file of vectors holds the id "
            f"column ({ds.id_column or 'id'!r}) and the column of vectors, nothing else")
    ids = table.column(id_column).to_pandas().rename(id_column)

    def where(row):
        return f"row {row + 1}{_id_of(ids, row)}"

    column = table.column(vectors).combine_chunks()
    if len(column) == 0:
        raise UsageError(f"{path}: the table has a header but no rows; add a row per sample")
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if np.isnan(lengths.astype(float)).any():
        raise UsageError(f"{path}: {where(int(np.flatnonzero(np.isnan(lengths))[0]))} has no "
                         f"vector in {vectors!r}; give every sample its vector")
    lengths = lengths.astype(np.int64)
    if (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise UsageError(f"{path}: {where(row)} has a vector of {lengths[row]} numbers, row 1 "
                         f"of {lengths[0]}; every vector needs the same length")
    try:
        flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    except (TypeError, ValueError):
        raise UsageError(f"{path}: column {vectors!r} holds {column.type}; the vectors must be "
                         "lists of numbers") from None
    return ids, flat.reshape(len(lengths), int(lengths[0]) if len(lengths) else 0), where


# -- checking -----------------------------------------------------------------------------------


def _finite(values: np.ndarray, path: Path, where) -> np.ndarray:
    """`values`, refused with no columns or with NaN or infinite numbers."""
    if values.shape[1] < 1:
        raise UsageError(f"{path}: vectors of length 0; each sample needs at least one number")
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise UsageError(f"{path}: {where(int(row))} holds {values[row, col]} (value {col + 1} of "
                         "the row); every number must be finite")
    return values


def _probabilities(values: np.ndarray, path: Path, where) -> np.ndarray:
    """`values` as probabilities: finite, in [0, 1], rows summing to 1 (renormalised within
    SUM_TOLERANCE), refused at the first row that is not."""
    _finite(values, path, where)
    outside = (values < -BOUNDS_SLACK) | (values > 1 + BOUNDS_SLACK)
    if outside.any():
        row, col = np.argwhere(outside)[0]
        raise UsageError(
            f"{path}: {where(int(row))} holds {values[row, col]:g} (column {col + 1}); "
            "probabilities lie between 0 and 1: pass the softmax of your model's outputs, not "
            "its logits or scores")
    values = np.clip(values, 0, 1)
    sums = values.astype(np.float64).sum(axis=1)
    off = np.abs(sums - 1) > SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise UsageError(
            f"{path}: {where(row)} sums to {sums[row]:.6g}, not 1 ({int(off.sum())} such "
            "row(s)); each row holds one probability per class, summing to 1 (e.g. the softmax "
            "of your model's outputs)")
    return (values / sums[:, None]).astype(np.float32)


def _id_of(ids, row: int) -> str:
    """' (id 's003')' for a message about `row`, or '' when the row has no id."""
    value = ids.iloc[row]
    return "" if value is None or value != value or str(value).strip() == "" else \
        f" (id {str(value)!r})"


def _array_row(i: int, ds) -> str:
    return f"array row {i} (id {ds.ids[i]!r})"


def _listed(names, limit: int = 10) -> str:
    """Names quoted and joined, the first `limit` of them.

    >>> _listed(["a", "b"], limit=1)
    "'a', ... (2 in all)"
    """
    names = [str(n) for n in names]
    shown = ", ".join(map(repr, names[:limit]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _skipped_hint(ds) -> str:
    if not ds.skipped:
        return ""
    return (f"; {len(ds.skipped)} sample(s) were skipped while loading (summary.json lists "
            "them): leave their rows out, or write a table keyed by id instead")


def _id_hint(ds) -> str:
    if ds.kind == "images":
        return " (image paths relative to the dataset folder)"
    if ds.id_column is None:
        return " (row numbers from 0: the table has no id column; pass --id-column to use one)"
    return f" (the values of the column {ds.id_column!r})"
