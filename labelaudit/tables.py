"""Turn a table into a `Dataset`: choose the label, id and text columns, keep the rest as
features made usable (numbers as numbers, absurd values as missing)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .dataset import Dataset, check_classes
from .errors import UsageError
from .readers import read_table

LABEL_CANDIDATES = ("label", "labels", "target", "class", "y")
# A string column counts as free text when its values are this long on average (characters).
TEXT_MIN_MEAN_LENGTH = 30
# A text column whose values are numbers except for at most this share is read as numbers.
NOT_NUMBER_SHARE = 0.1
# A number this many robust spreads (interquartile ranges) from its column's median is absurd.
ABSURD_SPREADS = 1e6
# Column names that say "identifier" (sample_id, ID, uuid, index, pandas' unnamed index column).
ID_NAME = re.compile(r"(?:.*[_\- ])?(?:id|uuid|guid|key|index)|unnamed: ?0", re.IGNORECASE)
# Names that say "the sample id" outright; they win over other id-like columns.
EXACT_ID_NAMES = ("id", "sample_id", "uuid", "guid")
# The column `labelaudit apply` writes with each row's number in the original table, so a scan
# of the corrected copy keeps the original ids. Always the id when present, never a feature.
ROW_COLUMN = "labelaudit_row"


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
    # Columns named like ids may become the id, so they are read as written too.
    frame = read_table(path, encoding=encoding, as_text=lambda names: (
        _guess_label_column(names, label_column), id_column, text_column,
        *filter(_id_named, names)))
    label_column = _choose_label_column(list(frame.columns), path, label_column)
    _check_columns(frame, path, label_column, id_column=id_column, text_column=text_column)
    id_column, id_note = _choose_id_column(frame, label_column, id_column, text_column)
    if path.suffix.lower() in (".csv", ".tsv"):  # the others stay features, typed
        for column in set(filter(_id_named, frame.columns)) - {id_column, label_column,
                                                               text_column}:
            frame[column] = _typed(frame[column])
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
    warn.extend(id_note)
    keep = ~missing.to_numpy()
    frame, ids = frame[keep], ids[keep]
    classes, labels = _class_labels(frame[label_column].tolist(), path, label_column)

    features = [c for c in frame.columns if c not in (label_column, id_column, ROW_COLUMN)]
    if not features:
        raise UsageError(f"{path}: no feature columns besides the label; nothing to learn from")
    text_column = _choose_text_column(frame, features, path, kind=kind, text_column=text_column)
    common = dict(path=str(path), ids=ids.to_numpy(dtype=object), labels=labels,
                  classes=tuple(classes), label_column=label_column, id_column=id_column,
                  skipped=tuple(skipped))
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
    return check_classes(ds, where=str(path))


def _check_columns(frame, path: Path, label_column: str, *, id_column, text_column) -> None:
    """Refuse an --id-column or --text-column the table lacks, or an id that is the label."""
    for name, col in (("--id-column", id_column or None), ("--text-column", text_column)):
        if col is not None and col not in frame.columns:
            raise UsageError(f"{path}: no column {col!r} for {name} "
                             f"(columns: {', '.join(frame.columns)})")
    if id_column == label_column:
        raise UsageError(f"{path}: --id-column and the label column are both {id_column!r}; "
                         "name two different columns")


def _choose_id_column(frame, label_column: str, id_column: str | None,
                      text_column: str | None) -> tuple[str | None, list[str]]:
    """(the id column or None for row numbers, warnings): --id-column when given ('' asks for
    row numbers), else the one id-like column of the first tier in `_ID_TIERS` that has any."""
    if id_column is not None:
        return id_column or None, []
    others = [c for c in frame.columns if c not in (label_column, text_column)]
    if text_column is None and len(others) < 2:
        return None, []  # the only column besides the label is the one to learn from
    for tier in _ID_TIERS:
        found = [c for c in others if tier(frame[c], c)]
        if len(found) == 1:
            return found[0], [
                f"using column {found[0]!r} as the sample id (unique in every row); pass "
                "--id-column NAME to choose another, or --id-column '' for row numbers"]
        if found:
            return None, [
                f"columns {', '.join(map(repr, found))} could each be the sample id; using row "
                "numbers instead of choosing one silently; pass --id-column NAME to choose"]
    return None, []


def _id_named(name: str) -> bool:
    return name == ROW_COLUMN or ID_NAME.fullmatch(name.strip()) is not None


def _typed(series):
    """A column read as text, typed as the csv reader types it: pandas' missing-value strings
    as missing, numbers as numbers when every value is one (decimals parsed exactly)."""
    import pandas as pd
    from pandas._libs.parsers import STR_NA_VALUES

    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        return series  # (parquet, jsonl: typed by their reader)
    series = series.where(~series.isin(STR_NA_VALUES), np.nan)
    numbers = pd.to_numeric(series, errors="coerce")
    if not numbers.isna().equals(series.isna()):
        return series
    return numbers if pd.api.types.is_integer_dtype(numbers) else series.map(float)


def _unique(series) -> bool:
    """A value in every row, each different."""
    return not series.isna().any() and series.nunique() == len(series)


# Ways a column can say "I am the sample id", strongest first (see `_choose_id_column`).
_ID_TIERS = (
    lambda series, name: name == ROW_COLUMN and _unique(series),
    lambda series, name: name.strip().lower() in EXACT_ID_NAMES and _unique(series),
    lambda series, name: ID_NAME.fullmatch(name.strip()) is not None and _unique(series),
    # (A column of numbers with a few typos is a measurement, not an id.)
    lambda series, name: _looks_like_id(series, name) and not _mostly_numbers(series),
)


def _mostly_numbers(series) -> bool:
    return series.map(_as_number).notna().mean() >= 1 - NOT_NUMBER_SHARE


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
