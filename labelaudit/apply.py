"""Turn review decisions (decisions.csv from report.html) into a corrected copy of the dataset.

The original is only read. Image folders are copied with relabeled files moved into their new
class folders and removed files left out, each sample as a real file (read through the symlinks
the scan follows), so the copy holds exactly the samples the scan saw. Tables keep every column
and the row order, with the label column rewritten and removed rows dropped, in the same file
format; every CSV written reads back to the same cells, whatever they hold. The copy is written
to a staging folder and moved into place, and FIXED/changes.csv records every applied decision.
An --out that ends in the table's suffix (wine-fixed.csv) is the corrected file itself, with its
change log beside it (wine-fixed.changes.csv); any other --out is a folder.

Ids follow the loader's rules (labelaudit.data.load_dataset): an image's id is its POSIX path
relative to the folder, a row's id is its --id-column value, else its 0-based row number. Row
numbers shift when rows are removed, so a table without an id column gets one in its copy:
`labelaudit_row`, appended as the last column (every other column keeps its place), holding each
row's number in the original; a re-scan of the copy takes it as the id column, so the changes
file's ids still name the same samples.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from .decisions import (
    CHANGES_FILE,
    DECISION_COLUMNS,
    DECISIONS,
    as_decisions,
    is_change_log,
    moved_paths,
)
from .errors import UsageError
from .readers import TABLE_SUFFIXES
from .tables import ROW_COLUMN  # the copy's id column when the original's ids were row numbers


@dataclass(frozen=True)
class ApplyResult:
    """What `apply_decisions` did (or, with dry_run, would do)."""

    out: Path
    kind: str  # "images" or "table"
    written: Path  # the corrected folder (images) or table file
    changes: object  # DataFrame: id, given_label, decision, new_label[, old_path, new_path]
    counts: dict = field(default_factory=dict)  # keep, relabel, remove, unchanged, n_samples
    dry_run: bool = False
    changes_file: Path | None = None  # where changes.csv is (or would be) written
    row_column: str | None = None  # ROW_COLUMN when the copy got it: scan it as the id column

    def changes_csv(self) -> str:
        """changes.csv as text (what `apply --dry-run` prints); it reads back exactly."""
        import io

        from .outputs import write_csv

        buffer = io.StringIO()
        write_csv(self.changes, buffer)
        return buffer.getvalue()


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
    follow_symlinks: bool = False,
) -> ApplyResult:
    """Write a corrected copy of `data` into `out` following `decisions`; `data` is only read.

    For a table, an `out` ending in its suffix is the corrected file, its change log beside it
    as `<stem>.changes.csv`; otherwise `out` is a folder holding the copy and changes.csv. An
    existing file is replaced only with `force`, and only when its change log lies beside it.
    `decisions` is a path (decisions.csv exported from report.html) or a DataFrame with the
    same columns. With `dry_run`, nothing is written and the result says what would change.
    Image ids are read as the scan reads them (through symlinks inside the folder; outside it
    only with `follow_symlinks`, as `scan --follow-symlinks`), and every sample of the copy
    is a real file, so the copy holds exactly the samples the scan saw.

    >>> import pandas as pd
    >>> decisions = pd.DataFrame({"id": ["s0001", "s0002"], "decision": ["relabel", "remove"],
    ...                           "new_label": ["class_1", ""]})
    >>> result = apply_decisions("datasets/wine-noisy.csv", decisions, "wine-fixed",
    ...                          id_column="sample_id", dry_run=True)
    >>> result.counts["relabel"], result.counts["remove"], result.out.exists()
    (1, 1, False)
    """
    from .data import load_dataset

    data, out = Path(data), Path(out)
    decisions_path = None if _is_frame(decisions) else Path(decisions)
    decisions = as_decisions(decisions)
    if not data.exists():
        raise UsageError(f"{data}: no such file or folder; check the path")
    as_file = _out_is_file(data, out)
    if as_file:
        _check_out_file(data, out, force=force, dry_run=dry_run, decisions_path=decisions_path)
    else:
        _check_out(data, out, force=force, dry_run=dry_run, decisions_path=decisions_path)
    if id_column is None and data.is_file() and ROW_COLUMN in _columns(data, encoding):
        id_column = ROW_COLUMN  # a copy apply wrote: its rows are numbered as in the original
    if label_column is None and data.is_file():
        label_column = _label_column_of(data, decisions, encoding)
    ds = load_dataset(data, label_column=label_column, id_column=id_column, encoding=encoding,
                      follow_symlinks=follow_symlinks)
    # The column the loader took the ids from (one it detected, or None for row numbers).
    id_column = getattr(ds, "id_column", id_column)
    if ds.kind == "images":
        _check_image_ids(decisions["id"])
    plan = _plan(ds, decisions, where=str(decisions_path or "decisions"))
    if ds.kind == "images":
        return _apply_images(ds, data, plan, out, dry_run=dry_run)
    return _apply_table(ds, data, plan, out, dry_run=dry_run, label_column=ds.label_column,
                        id_column=id_column, encoding=encoding, as_file=as_file)


def changes_file_of(out: str | os.PathLike) -> Path:
    """The change log beside a corrected table file: wine-fixed.csv -> wine-fixed.changes.csv.

    >>> changes_file_of("fixed/wine-fixed.csv").as_posix()
    'fixed/wine-fixed.changes.csv'
    """
    out = Path(out)
    return out.with_name(f"{out.stem}.changes.csv")


def _out_is_file(data: Path, out: Path) -> bool:
    """Whether --out names the corrected table file (it ends in the table's suffix) rather than
    a folder; refuses a table suffix that the copy cannot have."""
    suffix = out.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        return False
    if data.is_dir():
        raise UsageError(f"--out {out} ends in {suffix}, which names a corrected table file, but "
                         f"{data} is an image folder; name a folder without a table suffix, e.g. "
                         "--out ./fixed")
    if data.suffix.lower() != suffix:
        raise UsageError(f"--out {out} ends in {suffix}, but the corrected copy keeps the format "
                         f"of {data} ({data.suffix}): pass --out {out.stem}{data.suffix} for the "
                         f"file, or a name without a table suffix for a folder")
    return True


def _check_out_file(data: Path, out: Path, *, force: bool, dry_run: bool,
                    decisions_path) -> None:
    """Refuse an --out file (or its change log) that is an input, or that apply did not write.

    A file is replaced only with `force` and only when its change log lies beside it: apply
    writes the two together, so a file without one is somebody else's.
    """
    from .outputs import check_writable

    log = changes_file_of(out)
    for path in (out, log):
        for source, what in ((data, "the dataset"), (decisions_path, "the decisions file")):
            if source is not None and path.resolve() == Path(source).resolve():
                raise UsageError(f"--out {out} would write {path}, which is {what}; apply never "
                                 "writes over its input: choose another --out")
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise UsageError(f"{path} exists and is not a plain file (a folder or a symlink); "
                             "apply never writes there: choose another --out")
    if dry_run:
        return
    check_writable(out.parent, option="--out")
    existing = [p for p in (out, log) if p.exists()]
    if existing and not force:
        raise UsageError(f"{existing[0]} already exists; pass --force to replace the corrected "
                         f"file and change log apply wrote, or choose another --out")
    if log.exists() and not is_change_log(log):
        raise UsageError(f"{log} exists and is not a change log apply wrote; labelaudit never "
                         "replaces a file it did not write: move it or choose another --out")
    if out.exists() and not log.exists():
        raise UsageError(f"--out {out} exists but no change log {log.name} lies beside it, so "
                         "labelaudit did not write it and never replaces it: choose another "
                         "--out")


def _columns(path: Path, encoding: str) -> list[str]:
    """A table's column names ([] for a file that is no table; the loader says why)."""
    if path.suffix.lower() not in TABLE_SUFFIXES:
        return []
    from .data import read_table
    from .readers import _csv_header

    if path.suffix.lower() in (".csv", ".tsv"):  # the header row alone, not the whole file
        try:
            return _csv_header(path, encoding=encoding)
        except (OSError, UnicodeError, LookupError):
            return []  # the loader reads it next and says what is wrong
    return [str(c) for c in read_table(path, encoding=encoding).columns]


def _label_column_of(path: Path, decisions, encoding: str) -> str | None:
    """The table's one column that holds every given and new label of the decisions, when the
    loader would find no label column by name (a scan told --label-column, apply was not).

    None leaves the choice to the loader. A wrong column cannot slip through: every decision's
    given_label is checked against the sample's label before anything is written.
    """
    from .data import read_table
    from .tables import LABEL_CANDIDATES

    frame = read_table(path, encoding=encoding, as_text=lambda names: names)
    if any(str(c).lower() in LABEL_CANDIDATES for c in frame.columns):
        return None
    wanted = set(decisions["given_label"]) | set(decisions["new_label"])
    wanted.discard("")
    holding = [c for c in frame.columns
               if wanted and wanted <= set(frame[c].dropna().astype(str))]
    return str(holding[0]) if len(holding) == 1 else None


def _is_frame(value) -> bool:
    import pandas as pd

    return isinstance(value, pd.DataFrame)


def _check_out(data: Path, out: Path, *, force: bool, dry_run: bool, decisions_path) -> None:
    from .outputs import check_out, check_writable, refuse_inside

    if not dry_run:  # before the dataset is read
        check_writable(out, option="--out", renamed=True)

    refuse_inside(out, data, example="./fixed")
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
    if ds.kind == "images":
        _refuse_links_leading_outside(Path(ds.path), unknown, where=where)
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:5])
        raise UsageError(
            f"{where}: {len(unknown)} id(s) are not samples of {ds.path} (first: {shown}); were "
            "the decisions made for another dataset, or with another --id-column?"
        )
    classes = set(ds.classes)

    def class_of(name: str) -> str:
        return name if name in classes or name.strip() not in classes else name.strip()

    bad = sorted({c for c, d in zip(decisions["new_label"], decisions["decision"], strict=True)
                  if d == "relabel" and class_of(c) not in classes})
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
        decision, new_label = row.decision, class_of(row.new_label) if row.new_label else ""
        if decision == "relabel" and new_label == given:
            decision, new_label = "keep", ""
        steps.append(_Step(row.id, k, given, decision, new_label))
    return steps


def _refuse_links_leading_outside(root: Path, ids, *, where: str) -> None:
    """Say so when unknown image ids are files reached through a symlink leading outside."""
    real_root = root.resolve()
    for sample_id in ids:
        path = root / sample_id
        try:
            outside = path.is_file() and not path.resolve().is_relative_to(real_root)
        except (OSError, RuntimeError):
            outside = False
        if outside:
            raise UsageError(
                f"{where}: id {sample_id!r} is reached through a symlink leading outside the "
                f"dataset {root}; apply reads outside the dataset only when asked: pass "
                "--follow-symlinks, as the scan did, or copy the linked files into the dataset "
                "and scan again"
            )


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

    entries = _copy_plan(root, ds)
    removed = {s.id for s in steps if s.decision == "remove"}
    moving = [s for s in steps if s.decision == "relabel"]
    taken = {rel for rel in entries if rel not in removed} - {s.id for s in moving}
    new_path = {}
    not_folders = {rel for rel, how in entries.items() if how != "dir"}
    for step in sorted(moving, key=lambda s: s.id):
        new_path[step.id] = _free_path(step, taken)
        taken.add(new_path[step.id])
        blocked = [p for p in PurePosixPath(new_path[step.id]).parents if str(p) in not_folders]
        if blocked:  # mkdir would fail on it, or write through a link out of the copy
            raise UsageError(
                f"cannot move {step.id!r} to class {step.new_label!r}: {blocked[0]} in the "
                "dataset is a file or a symlink where the moved image needs a folder; rename "
                "it, or remove that decision"
            )
    paths = {s.id: (new_path.get(s.id, "") if s.decision != "keep" else s.id) for s in steps}
    changes = _changes_frame(steps, paths)
    result = ApplyResult(out=out, kind="images", written=out, changes=changes,
                         counts=_counts(steps, ds.n_samples), dry_run=dry_run,
                         changes_file=out / CHANGES_FILE)
    if dry_run:
        return result
    with staged(out) as staging:
        for rel, how in entries.items():
            if rel in removed:
                continue
            target = staging / new_path.get(rel, rel)
            if how == "dir":
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if how == "link":
                os.symlink(_link_target(root / rel), target)
            else:  # follows symlinks: every sample in the copy is a file of its own
                shutil.copy2(root / rel, target)
        _write_changes(changes, staging / CHANGES_FILE)
    return result


def _copy_plan(root: Path, ds) -> dict[str, str]:
    """What the copy starts from: each relative POSIX path (sorted) -> 'copy', 'link' or 'dir'.

    The copy holds exactly the samples the scan saw. Samples and skipped files are the
    loader's (``ds.ids``, ``ds.skipped``), named as it named them, through the symlinks it
    follows; each is copied as a real file, so a decision on an id reached through a link is
    carried out and no sample of the copy hangs on another. A symlink leading outside the dataset
    or nowhere stays a link to the same place, never read. Entries the loader does not look at
    (loose top-level files, hidden names, folders) are copied as they are, except symlinked
    folders inside the dataset: the loader read their samples under another name (a second link
    to a folder, a loop), and carried over as links they would add samples to the copy.
    """
    real_root = root.resolve()
    samples = {str(i) for i in ds.ids}
    plan = {}
    for rel in [*samples, *(str(rel) for rel, _ in ds.skipped)]:
        path = root / rel
        if rel not in samples and _leads_nowhere_or_outside(path, real_root):
            plan[rel] = "link"
        elif path.is_file():
            plan[rel] = "copy"
    read = {rel.split("/")[0] for rel in plan}  # the class folders the loader walked
    holding = {p.as_posix() for rel in plan for p in PurePosixPath(rel).parents}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            parts = rel.split("/")
            by_loader = parts[0] in read and not any(p.startswith(".") for p in parts)
            if rel in plan or rel in holding:
                continue  # a folder of samples (through a link or not) is made by its files
            if _leads_nowhere_or_outside(path, real_root):
                plan[rel] = "link"
            elif path.is_symlink() and path.is_dir():
                continue  # read by the loader under another name, or not at all
            elif path.is_dir():
                plan[rel] = "dir"
            elif path.is_file() and not by_loader:
                plan[rel] = "copy"
            # A file under a class folder that the loader did not list lies in a folder it read
            # through a link (under the link's name), or is no regular file (a fifo): left out.
    return dict(sorted(plan.items()))


def _leads_nowhere_or_outside(path: Path, real_root: Path) -> bool:
    """Whether `path` is a symlink that is broken, loops, or resolves outside `real_root`."""
    if not path.is_symlink():
        return False
    try:
        path.resolve(strict=True).relative_to(real_root)
    except (OSError, RuntimeError, ValueError):
        return True
    return False


def _link_target(link: Path) -> str:
    """The place `link` points to, as an absolute path that means the same from anywhere."""
    return os.path.join(os.path.realpath(link.parent), os.readlink(link))


def _free_path(step: _Step, taken: set) -> str:
    """The moved file's path in its new class folder; a clash gets '.from-<old class>'."""
    return next(path for path in moved_paths(step.id, step.given_label, step.new_label)
                if path not in taken)


def _write_changes(changes, path: Path) -> None:
    from .outputs import write_csv

    write_csv(changes, path)


# ---------------------------------------------------------------------------------------------
# Tables


def _apply_table(ds, path: Path, steps, out: Path, *, dry_run: bool, label_column: str,
                 id_column: str | None, encoding: str, as_file: bool = False) -> ApplyResult:
    import numpy as np

    from .outputs import staged

    if path.name == CHANGES_FILE and not as_file:
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
    written, log = (out, changes_file_of(out)) if as_file else (out / path.name,
                                                               out / CHANGES_FILE)
    numbered = id_column is None  # ids were row numbers: the copy keeps them in ROW_COLUMN
    result = ApplyResult(out=out, kind="table", written=written, changes=changes,
                         counts=_counts(steps, ds.n_samples), dry_run=dry_run, changes_file=log,
                         row_column=ROW_COLUMN if numbered else None)
    if dry_run:
        return result
    writer = {".csv": _write_csv, ".tsv": _write_csv, ".parquet": _write_parquet,
              ".jsonl": _write_jsonl}[path.suffix.lower()]

    def write(table: Path, changes_csv: Path) -> None:
        writer(path, table, label_column=label_column, rows=rows, sample_class=sample_class,
               relabel=relabel, drop=drop, encoding=encoding, numbered=numbered)
        _write_changes(changes, changes_csv)

    if as_file:
        _write_beside(written, log, write)
    else:
        with staged(out) as staging:
            write(staging / path.name, staging / CHANGES_FILE)
    return result


def _write_beside(table: Path, log: Path, write) -> None:
    """write(table, log) into temporary names beside them, then move both into place: the
    change log first, so a corrected file in place always has its log beside it."""
    table.parent.mkdir(parents=True, exist_ok=True)
    drafts = [path.with_name(f".{path.name}.labelaudit-draft-{os.getpid()}")
              for path in (table, log)]
    try:
        write(*drafts)
        os.replace(drafts[1], log)
        os.replace(drafts[0], table)
    finally:
        for draft in drafts:
            draft.unlink(missing_ok=True)


def _row_ids(path: Path, id_column: str | None, encoding: str) -> list[str]:
    """Each row's id by the loader's rules: the --id-column value, else the row number."""
    from .data import read_as_text, read_table

    if path.suffix.lower() in (".csv", ".tsv"):
        # The loader reads csv ids as the text in the file ('007' stays '007').
        frame = read_as_text(path, encoding=encoding)
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
               encoding, numbered=False) -> None:
    from .data import read_as_text, separator
    from .outputs import write_csv

    # Read as text so every other cell is written back exactly as it was (007 stays 007).
    frame = read_as_text(source, encoding=encoding)
    frame.columns = [str(c) for c in frame.columns]
    labels = frame[label_column].tolist()
    value = _raw_value_of(labels, rows, sample_class)
    for row, name in relabel.items():
        labels[row] = value[name]
    frame[label_column] = labels
    if numbered:
        frame[ROW_COLUMN] = [str(r) for r in range(len(frame))]
    write_csv(frame[~drop], target, sep=separator(source), encoding=encoding)


def _write_parquet(source: Path, target: Path, *, label_column, rows, sample_class, relabel,
                   drop, encoding, numbered=False) -> None:
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
    if numbered:
        table = table.append_column(ROW_COLUMN, pa.array(range(table.num_rows), type=pa.int64()))
    pq.write_table(table.filter(pa.array(~drop)), target)


def _write_jsonl(source: Path, target: Path, *, label_column, rows, sample_class, relabel, drop,
                 encoding, numbered=False) -> None:
    # Rows as pandas' read_json(lines=True) (the loader) counts them: split on '\n' alone, and a
    # line blank after strip() is no row. str.splitlines() would also split on U+2028, U+0085,
    # ... inside JSON strings. A line's '\r' (CRLF files) stays with it, so copies are exact.
    with open(source, encoding=encoding, newline="") as handle:
        lines = [line for line in handle.read().split("\n") if line.strip()]
    records = {row: json.loads(lines[row].strip()) for row in set(rows)}
    labels = {row: record.get(label_column) for row, record in records.items()}
    value = _raw_value_of(labels, rows, sample_class)
    with open(target, "w", encoding=encoding, newline="") as handle:
        for row, line in enumerate(lines):
            if drop[row]:
                continue
            if row in relabel:
                # Only relabeled lines are re-encoded; every other line is copied byte for byte.
                record = records[row]
                record[label_column] = value[relabel[row]]
                ending = "\r" if line.endswith("\r") else ""
                line = json.dumps(record, ensure_ascii=False) + ending
            if numbered:
                line = _with_row_number(line, row)
            handle.write(line + "\n")


def _with_row_number(line: str, row: int) -> str:
    """A JSON object's line with ROW_COLUMN added as its last key, every other byte kept.

    >>> _with_row_number('{"x": 1}\\r', 7)
    '{"x": 1, "labelaudit_row": 7}\\r'
    """
    ending = "\r" if line.endswith("\r") else ""
    body = line[:len(line) - len(ending)].rstrip()
    inner = body[:-1].rstrip()  # the loader read each line as one object: it ends in '}'
    comma = "" if inner.lstrip().endswith("{") else ", "
    return f'{inner}{comma}"{ROW_COLUMN}": {row}}}{ending}'
