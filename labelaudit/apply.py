"""Turn review decisions (decisions.csv from report.html) into a corrected copy of the dataset.

The original is only read. Image folders are copied with relabeled files moved into their new
class folders and removed files left out; tables keep every column and the row order, with the
label column rewritten and removed rows dropped, in the same file format. The copy is written
to a staging folder and moved into place, and FIXED/changes.csv records every applied decision.

Ids follow the loader's rules (labelaudit.data.load_dataset): an image's id is its POSIX path
relative to the folder, a row's id is its --id-column value, else its 0-based row number.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import UsageError

DECISION_COLUMNS = ("id", "given_label", "decision", "new_label")
DECISIONS = ("keep", "relabel", "remove")
CHANGES_FILE = "changes.csv"


@dataclass(frozen=True)
class ApplyResult:
    """What `apply_decisions` did (or, with dry_run, would do)."""

    out: Path
    kind: str  # "images" or "table"
    written: Path  # the corrected folder (images) or table file
    changes: object  # DataFrame: id, given_label, decision, new_label[, old_path, new_path]
    counts: dict = field(default_factory=dict)  # keep, relabel, remove, unchanged, n_samples
    dry_run: bool = False


# ---------------------------------------------------------------------------------------------
# Decisions files


def read_decisions(path: str | os.PathLike):
    """Read and validate a decisions file (`id,given_label,decision,new_label`).

    Also accepts FIXED/changes.csv written by `apply` (extra columns are kept). Raises
    UsageError naming the line and the fix for missing columns, unknown decisions, a relabel
    without new_label, a new_label on keep/remove, and repeated ids.

    >>> decisions = read_decisions("decisions.csv")  # doctest: +SKIP
    >>> list(decisions.columns[:4])  # doctest: +SKIP
    ['id', 'given_label', 'decision', 'new_label']
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such decisions file; export one from report.html with "
                         "'Export decisions'")
    try:
        # Everything as text: ids such as 007 or 1.0 must not be turned into numbers.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                            encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the decisions file is not UTF-8 text; save it as UTF-8 CSV") \
            from None
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path}: the decisions file is empty; it needs the header "
                         f"{','.join(DECISION_COLUMNS)}") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise UsageError(f"{path}: not a valid CSV file ({str(exc).strip()[:200]}); export it "
                         "again from report.html") from None
    return check_decisions(frame, where=str(path))


def check_decisions(frame, *, where: str = "decisions"):
    """Validate a decisions DataFrame (as `read_decisions` does) and return a normalized copy.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"id": ["a.png"], "decision": ["Remove"], "new_label": [""]})
    >>> check_decisions(frame)["decision"].tolist()
    ['remove']
    """
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("id", "decision", "new_label") if c not in frame.columns]
    if missing:
        raise UsageError(
            f"{where}: missing column(s) {', '.join(missing)} (found: "
            f"{', '.join(map(repr, frame.columns)) or 'none'}); a decisions file has the header "
            f"{','.join(DECISION_COLUMNS)}"
        )
    if "given_label" not in frame.columns:
        frame.insert(1, "given_label", "")
    for column in frame.columns:
        frame[column] = frame[column].fillna("").astype(str)
    frame["decision"] = frame["decision"].str.strip().str.lower()
    frame["new_label"] = frame["new_label"].str.strip()
    for line, row in zip(range(2, len(frame) + 2), frame.itertuples(index=False), strict=True):
        if row.id == "":
            raise UsageError(f"{where}: line {line} has an empty id; every decision names a "
                             "sample id")
        if row.decision not in DECISIONS:
            raise UsageError(f"{where}: line {line} (id {row.id!r}): unknown decision "
                             f"{row.decision!r}; use one of {', '.join(DECISIONS)}")
        if row.decision == "relabel" and row.new_label == "":
            raise UsageError(f"{where}: line {line} (id {row.id!r}): relabel needs a new_label")
        if row.decision != "relabel" and row.new_label != "":
            raise UsageError(f"{where}: line {line} (id {row.id!r}): new_label "
                             f"{row.new_label!r} given for a {row.decision} decision; leave "
                             "new_label empty unless the decision is relabel")
    repeated = frame["id"][frame["id"].duplicated()]
    if len(repeated):
        raise UsageError(f"{where}: id {repeated.iloc[0]!r} has more than one decision "
                         f"({len(repeated)} repeated id(s)); keep one line per id")
    columns = list(DECISION_COLUMNS) + [c for c in frame.columns if c not in DECISION_COLUMNS]
    return frame[columns].reset_index(drop=True)


def _as_decisions(decisions):
    import pandas as pd

    if isinstance(decisions, pd.DataFrame):
        return check_decisions(decisions)
    return read_decisions(decisions)


# ---------------------------------------------------------------------------------------------
# Re-scan after review


def mark_reviewed(issues, decisions):
    """Mark reviewed samples in an issues table so a re-scan lists only new work.

    `decisions` is a decisions DataFrame or a path (decisions.csv, or FIXED/changes.csv for a
    re-scan of the corrected copy, whose moved images match by their new path). Adds
    `reviewed` (bool) and `decision` ('' when not reviewed); reviewed rows get
    is_label_issue False and an empty rank; the remaining flagged rows are ranked 1..n again in
    their current order.

    >>> import pandas as pd
    >>> issues = pd.DataFrame({"id": ["a", "b", "c"], "label_quality": [.1, .2, .9],
    ...                        "is_label_issue": [True, True, False],
    ...                        "rank": pd.array([1, 2, None], dtype="Int64")})
    >>> marked = mark_reviewed(issues, pd.DataFrame({"id": ["a"], "decision": ["keep"],
    ...                                              "new_label": [""]}))
    >>> marked["rank"].tolist(), marked["reviewed"].tolist()
    ([<NA>, 1, <NA>], [True, False, False])
    """
    import numpy as np
    import pandas as pd

    decisions = _as_decisions(decisions)
    decision_of = dict(zip(decisions["id"], decisions["decision"], strict=True))
    if "new_path" in decisions.columns:
        for new_path, decision in zip(decisions["new_path"], decisions["decision"], strict=True):
            if new_path:
                decision_of.setdefault(new_path, decision)
    frame = issues.copy()
    ids = frame["id"].astype(str)
    frame["reviewed"] = ids.map(lambda i: i in decision_of).astype(bool)
    frame["decision"] = ids.map(lambda i: decision_of.get(i, "")).astype(object)
    flagged = frame["is_label_issue"].astype(bool).to_numpy() & ~frame["reviewed"].to_numpy()
    frame["is_label_issue"] = flagged
    rank = pd.array([pd.NA] * len(frame), dtype="Int64")
    rank[flagged] = np.arange(1, int(flagged.sum()) + 1)
    frame["rank"] = rank
    return frame


# ---------------------------------------------------------------------------------------------
# Apply


def apply_decisions(
    data: str | os.PathLike,
    decisions,
    out: str | os.PathLike,
    *,
    force: bool = False,
    dry_run: bool = False,
    label_column: str | None = None,
    id_column: str | None = None,
    encoding: str = "utf-8",
) -> ApplyResult:
    """Write a corrected copy of `data` into `out` following `decisions`; `data` is only read.

    `decisions` is a path (decisions.csv exported from report.html) or a DataFrame with the
    same columns. With `dry_run`, nothing is written and the result says what would change.

    >>> result = apply_decisions("datasets/digits-noisy", "decisions.csv",
    ...                          "digits-fixed")  # doctest: +SKIP
    >>> result.counts["relabel"]  # doctest: +SKIP
    12
    """
    from .data import load_dataset

    data, out = Path(data), Path(out)
    decisions_path = None if _is_frame(decisions) else Path(decisions)
    decisions = _as_decisions(decisions)
    if not data.exists():
        raise UsageError(f"{data}: no such file or folder; check the path")
    _check_out(data, out, force=force, dry_run=dry_run, decisions_path=decisions_path)
    ds = load_dataset(data, label_column=label_column, id_column=id_column, encoding=encoding)
    if ds.kind == "images":
        _check_image_ids(decisions["id"])
    plan = _plan(ds, decisions, where=str(decisions_path or "decisions"))
    if ds.kind == "images":
        return _apply_images(ds, data, plan, out, dry_run=dry_run)
    return _apply_table(ds, data, plan, out, dry_run=dry_run, label_column=ds.label_column,
                        id_column=id_column, encoding=encoding)


def _is_frame(value) -> bool:
    import pandas as pd

    return isinstance(value, pd.DataFrame)


def _check_out(data: Path, out: Path, *, force: bool, dry_run: bool, decisions_path) -> None:
    from .outputs import check_out

    source, target = data.resolve(), out.resolve()
    if target == source or source in target.parents:
        raise UsageError(f"--out {out} is inside the dataset {data}; choose a folder outside it, "
                         "e.g. --out ./fixed")
    # Also refuses an --out holding the data, a file, and a folder labelaudit did not write.
    check_out(out, inputs=[data])
    if decisions_path is not None and out.resolve() in decisions_path.resolve().parents:
        raise UsageError(f"the decisions file {decisions_path} is inside --out {out}, which "
                         "would be replaced; move it out first or choose another --out")
    if out.exists() and not force and not dry_run:
        raise UsageError(f"--out {out} already exists; pass --force to replace it, or choose "
                         "another --out")


def _check_image_ids(ids) -> None:
    """Refuse image ids that would reach outside the folder when used as paths."""
    for sample_id in ids:
        posix, windows = PurePosixPath(sample_id), PureWindowsPath(sample_id)
        if (posix.is_absolute() or windows.is_absolute() or windows.drive
                or ".." in posix.parts or ".." in windows.parts or "\0" in sample_id):
            raise UsageError(
                f"decisions: id {sample_id!r} tries to leave the dataset folder (absolute path "
                "or '..'); image ids are paths relative to the folder, as in report.html"
            )


@dataclass(frozen=True)
class _Step:
    id: str
    position: int  # index into the Dataset
    given_label: str
    decision: str
    new_label: str


def _plan(ds, decisions, *, where: str) -> list[_Step]:
    """Check every decision against the loaded dataset and resolve it to a step."""
    position = {str(i): k for k, i in enumerate(ds.ids)}
    unknown = [i for i in decisions["id"] if i not in position]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:5])
        raise UsageError(
            f"{where}: {len(unknown)} id(s) are not samples of {ds.path} (first: {shown}); were "
            "the decisions made for another dataset, or with another --id-column?"
        )
    classes = set(ds.classes)
    bad = sorted({c for c, d in zip(decisions["new_label"], decisions["decision"], strict=True)
                  if d == "relabel" and c not in classes})
    if bad:
        known = ", ".join(repr(c) for c in ds.classes[:20])
        more = f" and {len(ds.classes) - 20} more" if len(ds.classes) > 20 else ""
        raise UsageError(f"{where}: unknown class(es) {', '.join(map(repr, bad[:5]))} in "
                         f"new_label; the classes are {known}{more}")
    steps = []
    for row in decisions.itertuples(index=False):
        k = position[row.id]
        given = ds.classes[ds.labels[k]]
        if row.given_label and row.given_label != given:
            raise UsageError(
                f"{where}: id {row.id!r} has given_label {row.given_label!r} in the decisions "
                f"but {given!r} in {ds.path}; the dataset changed since the report. Scan it "
                "again and review the new report"
            )
        decision, new_label = row.decision, row.new_label
        if decision == "relabel" and new_label == given:
            decision, new_label = "keep", ""
        steps.append(_Step(row.id, k, given, decision, new_label))
    return steps


def _counts(steps, n_samples: int) -> dict:
    counts = {d: sum(s.decision == d for s in steps) for d in DECISIONS}
    counts["unchanged"] = n_samples - counts["relabel"] - counts["remove"]
    counts["n_samples"] = n_samples
    return counts


def _changes_frame(steps, paths=None):
    import pandas as pd

    frame = pd.DataFrame({
        "id": [s.id for s in steps],
        "given_label": [s.given_label for s in steps],
        "decision": [s.decision for s in steps],
        "new_label": [s.new_label for s in steps],
    }, columns=list(DECISION_COLUMNS))
    if paths is not None:
        frame["old_path"] = [s.id for s in steps]
        frame["new_path"] = [paths.get(s.id, "") for s in steps]
    return frame


# ---------------------------------------------------------------------------------------------
# Image folders


def _apply_images(ds, root: Path, steps, out: Path, *, dry_run: bool) -> ApplyResult:
    from .outputs import staged

    entries = _tree(root)
    removed = {s.id for s in steps if s.decision == "remove"}
    moving = [s for s in steps if s.decision == "relabel"]
    taken = {rel for rel, _ in entries if rel not in removed} - {s.id for s in moving}
    new_path = {}
    for step in sorted(moving, key=lambda s: s.id):
        new_path[step.id] = _free_path(step, taken)
        taken.add(new_path[step.id])
    paths = {s.id: (new_path.get(s.id, "") if s.decision != "keep" else s.id) for s in steps}
    changes = _changes_frame(steps, paths)
    result = ApplyResult(out=out, kind="images", written=out, changes=changes,
                         counts=_counts(steps, ds.n_samples), dry_run=dry_run)
    if dry_run:
        return result
    with staged(out) as staging:
        for rel, kind in entries:
            target = staging / new_path.get(rel, rel)
            if kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
            elif rel not in removed:
                target.parent.mkdir(parents=True, exist_ok=True)
                # A moved symlink is copied as its file: its relative target would break.
                shutil.copy2(root / rel, target, follow_symlinks=rel in new_path)
        _write_changes(changes, staging / CHANGES_FILE)
    return result


def _tree(root: Path) -> list[tuple[str, str]]:
    """Every folder and file under `root` as (POSIX relative path, 'dir' or 'file'), sorted.

    Symlinks are listed, never followed, so nothing outside the dataset is read or copied.
    """
    entries = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames.sort()
        for name in list(dirnames):
            if (here / name).is_symlink():
                dirnames.remove(name)
                entries.append(((here / name).relative_to(root).as_posix(), "file"))
            else:
                entries.append(((here / name).relative_to(root).as_posix(), "dir"))
        for name in sorted(filenames):
            file = here / name
            if file.is_file() or file.is_symlink():
                entries.append((file.relative_to(root).as_posix(), "file"))
    return entries


def _free_path(step: _Step, taken: set) -> str:
    """The moved file's path in its new class folder; a clash gets '.from-<old class>'."""
    rest = PurePosixPath(step.id).parts[1:]
    candidate = PurePosixPath(step.new_label, *rest)
    if candidate.as_posix() not in taken:
        return candidate.as_posix()
    stem, suffix = candidate.stem, candidate.suffix
    n = 1
    while True:
        tag = f".from-{step.given_label}" + (f"-{n}" if n > 1 else "")
        option = candidate.with_name(f"{stem}{tag}{suffix}").as_posix()
        if option not in taken:
            return option
        n += 1


def _write_changes(changes, path: Path) -> None:
    changes.to_csv(path, index=False, encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Tables


def _apply_table(ds, path: Path, steps, out: Path, *, dry_run: bool, label_column: str,
                 id_column: str | None, encoding: str) -> ApplyResult:
    import numpy as np

    from .outputs import staged

    if path.name == CHANGES_FILE:
        raise UsageError(f"{path}: the table is named {CHANGES_FILE}, like the change log apply "
                         "writes beside it; rename the table first")
    ids = _row_ids(path, id_column, encoding)
    row_of = {i: r for r, i in enumerate(ids)}
    # Row of every loaded sample and the class it was loaded as; rows without a label are not
    # samples and are copied as they are.
    missing = [i for i in ds.ids if str(i) not in row_of]
    if missing:
        raise RuntimeError(f"labelaudit bug: loaded id {missing[0]!r} not found in {path}")
    rows = np.array([row_of[str(i)] for i in ds.ids], dtype=np.int64)
    sample_class = [ds.classes[c] for c in ds.labels]
    drop = np.zeros(len(ids), dtype=bool)
    relabel = {}
    for step in steps:
        row = rows[step.position]
        if step.decision == "remove":
            drop[row] = True
        elif step.decision == "relabel":
            relabel[row] = step.new_label
    changes = _changes_frame(steps)
    written = out / path.name
    result = ApplyResult(out=out, kind="table", written=written, changes=changes,
                         counts=_counts(steps, ds.n_samples), dry_run=dry_run)
    if dry_run:
        return result
    writer = {".csv": _write_csv, ".tsv": _write_csv, ".parquet": _write_parquet,
              ".jsonl": _write_jsonl}[path.suffix.lower()]
    with staged(out) as staging:
        writer(path, staging / path.name, label_column=label_column, rows=rows,
               sample_class=sample_class, relabel=relabel, drop=drop, encoding=encoding)
        _write_changes(changes, staging / CHANGES_FILE)
    return result


def _row_ids(path: Path, id_column: str | None, encoding: str) -> list[str]:
    """Each row's id by the loader's rules: the --id-column value, else the row number."""
    import pandas as pd

    from .data import read_table

    if path.suffix.lower() in (".csv", ".tsv"):
        # The loader reads csv ids as the text in the file ('007' stays '007').
        frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",",
                            dtype=str, keep_default_na=False, na_filter=False,
                            encoding=encoding, low_memory=False)
    else:
        frame = read_table(path, encoding=encoding)
    if id_column is None:
        return [str(r) for r in range(len(frame))]
    return [str(v) for v in frame[str(id_column)]]


def _raw_value_of(raw_labels, rows, sample_class) -> dict:
    """Class name -> the label exactly as the file writes it (text, number, ...)."""
    value = {}
    for row, name in zip(rows, sample_class, strict=True):
        value.setdefault(name, raw_labels[row])
    return value


def _write_csv(source: Path, target: Path, *, label_column, rows, sample_class, relabel, drop,
               encoding) -> None:
    import pandas as pd

    sep = "\t" if source.suffix.lower() == ".tsv" else ","
    # Read as text so every other cell is written back exactly as it was (007 stays 007).
    frame = pd.read_csv(source, sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                        encoding=encoding, low_memory=False)
    frame.columns = [str(c) for c in frame.columns]
    labels = frame[label_column].tolist()
    value = _raw_value_of(labels, rows, sample_class)
    for row, name in relabel.items():
        labels[row] = value[name]
    frame[label_column] = labels
    frame[~drop].to_csv(target, sep=sep, index=False, encoding=encoding)


def _write_parquet(source: Path, target: Path, *, label_column, rows, sample_class, relabel,
                   drop, encoding) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    index = table.schema.get_field_index(label_column)
    column = table.column(index)
    labels = column.to_pylist()
    value = _raw_value_of(labels, rows, sample_class)
    for row, name in relabel.items():
        labels[row] = value[name]
    table = table.set_column(index, table.schema.field(index), pa.array(labels, type=column.type))
    pq.write_table(table.filter(pa.array(~drop)), target)


def _write_jsonl(source: Path, target: Path, *, label_column, rows, sample_class, relabel, drop,
                 encoding) -> None:
    lines = [line for line in source.read_text(encoding=encoding).splitlines() if line.strip()]
    records = {row: json.loads(lines[row]) for row in set(rows)}
    labels = {row: record.get(label_column) for row, record in records.items()}
    value = _raw_value_of(labels, rows, sample_class)
    with open(target, "w", encoding=encoding, newline="\n") as handle:
        for row, line in enumerate(lines):
            if drop[row]:
                continue
            if row in relabel:
                # Only relabeled lines are re-encoded; every other line is copied byte for byte.
                record = records[row]
                record[label_column] = value[relabel[row]]
                line = json.dumps(record, ensure_ascii=False)
            handle.write(line + "\n")
