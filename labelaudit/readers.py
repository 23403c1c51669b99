"""Read a table file (.csv, .tsv, .parquet, .jsonl) into a pandas DataFrame, once, with one
clear message for every way the file can be unreadable."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dataset import short_reason
from .errors import UsageError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl")


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


def read_table(path: str | os.PathLike, *, encoding: str = "utf-8", as_text=lambda names: ()):
    """Read .csv/.tsv/.parquet/.jsonl into a DataFrame, with a clear message when it cannot.

    In csv/tsv files the columns that `as_text(header names)` picks are read as the text
    written there ('007' stays '007', 'NA' is text, only an empty cell is missing).

    >>> read_table("datasets/wine-noisy.csv").shape
    (178, 15)
    >>> read_table("datasets/wine-noisy.csv", as_text=lambda names: ["proline"])["proline"][0]
    '1065'
    """
    import pandas as pd

    path = Path(path)
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
        f"{path}: cannot read it as {suffix[1:]} ({short_reason(exc)}); check that the file is a "
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
