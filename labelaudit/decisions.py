"""Review decisions: decisions.csv from report.html (or apply's changes.csv), read, checked and
marked on an issues table for a re-scan.

A decisions file has the columns `id,given_label,decision,new_label`; ids follow the loader's rules
(labelaudit.data.load_dataset).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from .errors import UsageError

DECISION_COLUMNS = ("id", "given_label", "decision", "new_label")
DECISIONS = ("keep", "relabel", "remove")
CHANGES_FILE = "changes.csv"  # apply's change log, inside a corrected image folder


def is_change_log(path: str | os.PathLike) -> bool:
    """Whether `path` starts as every changes.csv apply writes."""
    header = ",".join(DECISION_COLUMNS)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.readline().rstrip("\r\n").startswith(header)
    except (OSError, UnicodeDecodeError):
        return False


def moved_paths(sample_id: str, given_label: str, new_label: str):
    """The paths `apply` gives a relabeled image (`class/name`), in the order it tries them:
    the same name in the new class's folder, then, where that is taken, '.from-<old class>'.

    >>> paths = moved_paths("cat/sub/001.png", "cat", "dog")
    >>> next(paths), next(paths), next(paths)
    ('dog/sub/001.png', 'dog/sub/001.from-cat.png', 'dog/sub/001.from-cat-2.png')
    """
    candidate = PurePosixPath(new_label, *PurePosixPath(sample_id).parts[1:])
    yield candidate.as_posix()
    n = 1
    while True:
        tag = f".from-{given_label}" + (f"-{n}" if n > 1 else "")
        yield candidate.with_name(f"{candidate.stem}{tag}{candidate.suffix}").as_posix()
        n += 1


def with_moved_paths(decisions, ids):
    """decisions.csv made on an image folder, fitted to `apply`'s corrected copy of it.

    A relabeled image moves to its new class's folder, so its id changes; the change log
    records where (`new_path`), decisions.csv does not. For each relabel whose id is not among
    `ids` this fills `new_path` with the path apply gave it: the last of `moved_paths` in the
    unbroken run of them that `ids` holds (earlier ones were taken before it moved in). A file
    that already has `new_path` (the change log) is returned as it is.

    >>> import pandas as pd
    >>> decisions = pd.DataFrame({"id": ["cat/1.png", "cat/2.png"], "given_label": "cat",
    ...                           "decision": ["relabel", "keep"], "new_label": ["dog", ""]})
    >>> with_moved_paths(decisions, ["dog/1.png", "dog/1.from-cat.png", "cat/2.png"])[
    ...     "new_path"].tolist()
    ['dog/1.from-cat.png', '']
    """
    decisions = as_decisions(decisions)
    if "new_path" in decisions.columns:
        return decisions
    known = {str(i) for i in ids}
    found = []
    for sample_id, given, decision, new in decisions[list(DECISION_COLUMNS)].itertuples(
            index=False):
        path = ""
        if decision == "relabel" and sample_id not in known:
            for candidate in moved_paths(sample_id, given, new):
                if candidate not in known:
                    break
                path = candidate
        found.append(path)
    return decisions.assign(new_path=found)


def read_decisions(path: str | os.PathLike):
    """Read and validate a decisions file (`id,given_label,decision,new_label`).

    Also accepts FIXED/changes.csv written by `apply` (extra columns are kept). Raises
    UsageError naming the line and the fix for missing columns, unknown decisions, a relabel
    without new_label, a new_label on keep/remove, and repeated ids.

    >>> import tempfile
    >>> import pandas as pd
    >>> path = Path(tempfile.mkdtemp()) / "decisions.csv"
    >>> pd.DataFrame({"id": ["007"], "decision": ["Relabel"], "new_label": ["dog"]}).to_csv(
    ...     path, index=False)
    >>> read_decisions(path).values.tolist()
    [['007', '', 'relabel', 'dog']]
    """
    import pandas as pd

    from .readers import read_as_text

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such decisions file; export one from report.html with "
                         "'Export decisions'")
    try:
        # Everything as text: ids such as 007 or 1.0 must not be turned into numbers.
        frame = read_as_text(path, encoding="utf-8-sig")
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
    # Kept as written, so a class whose name starts or ends with a space can be named; a
    # hand-typed 'dog ' still finds class 'dog' (see _plan), and blank means none.
    frame["new_label"] = frame["new_label"].where(frame["new_label"].str.strip() != "", "")
    _check_rows(frame, where)
    repeated = frame["id"][frame["id"].duplicated()]
    if len(repeated):
        raise UsageError(f"{where}: id {repeated.iloc[0]!r} has more than one decision "
                         f"({len(repeated)} repeated id(s)); keep one line per id")
    columns = list(DECISION_COLUMNS) + [c for c in frame.columns if c not in DECISION_COLUMNS]
    return frame[columns].reset_index(drop=True)


def _check_rows(frame, where: str) -> None:
    """Refuse, naming its line, a row without an id or with a decision and new_label that clash."""
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


def as_decisions(decisions):
    """Checked decisions from a DataFrame (`check_decisions`) or a path (`read_decisions`).

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"id": ["a"], "decision": ["keep"], "new_label": [""]})
    >>> as_decisions(frame).columns.tolist()
    ['id', 'given_label', 'decision', 'new_label']
    """
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
    from .audit import flagged_rank

    decisions = as_decisions(decisions)
    _check_labels_fit(issues, decisions)
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
    frame["rank"] = flagged_rank(flagged)
    return frame


FIT_ADVICE = ("was it made for another dataset, or for a table before apply renumbered its rows? "
              "Re-scan a corrected copy with the change log apply wrote beside it (a table "
              "without an id column gets its original row numbers in the column labelaudit_row)")


def _check_labels_fit(issues, decisions) -> None:
    """Refuse decisions whose samples mostly carry a label the decisions never named.

    A reviewed sample holds its given_label (the data as reviewed) or, when relabeled, its
    new_label (the corrected copy). When most do neither, the ids name other samples: ids that
    are row numbers of a table whose rows have shifted.
    """
    if "given_label" not in issues.columns:
        return
    label_of = dict(zip(issues["id"].astype(str), issues["given_label"].astype(str),
                        strict=True))
    checked = [(i, g, d, n) for i, g, d, n in zip(decisions["id"], decisions["given_label"],
                                                  decisions["decision"], decisions["new_label"],
                                                  strict=True) if g and i in label_of]
    wrong = [i for i, g, d, n in checked
             if label_of[i] != g and not (d == "relabel" and label_of[i] == n)]
    if checked and 2 * len(wrong) > len(checked):
        raise UsageError(
            f"--reviewed: {len(wrong)} of {len(checked)} reviewed samples found in the data hold "
            f"a label that is neither their given_label nor their new_label (first: id "
            f"{wrong[0]!r} is {label_of[wrong[0]]!r}), so the ids do not fit the data; "
            f"{FIT_ADVICE}")


def reviewed_warning(ids, decisions) -> str | None:
    """A warning when decisions name ids that are not in the data (so they mark nothing).

    Ids match as in `mark_reviewed` (changes.csv also by new_path). A removed sample is gone
    from a re-scan of the corrected copy by design, so removals count only when no decision
    matches at all. When no decision but removals matches, the file is refused (UsageError):
    it was made for other data, and marking nothing would silently list reviewed samples again.

    >>> import pandas as pd
    >>> decisions = pd.DataFrame({"id": ["a", "zz"], "decision": "keep", "new_label": ""})
    >>> reviewed_warning(["a", "b"], decisions)[:63]
    "--reviewed: 1 of 2 decision(s) name ids not in the data ('zz');"
    """
    decisions = as_decisions(decisions)
    known = {str(i) for i in ids}
    paths = decisions["new_path"] if "new_path" in decisions.columns else [""] * len(decisions)
    matched = [i in known or (p != "" and p in known)
               for i, p in zip(decisions["id"], paths, strict=True)]
    unmatched = [i for i, d, m in zip(decisions["id"], decisions["decision"], matched,
                                      strict=True) if not m and (d != "remove" or not any(matched))]
    if not unmatched:
        return None
    if not any(matched) and any(d != "remove" for d in decisions["decision"]):
        shown = ", ".join(repr(i) for i in unmatched[:3]) + (", ..." if len(unmatched) > 3
                                                              else "")
        raise UsageError(
            f"--reviewed: none of the {len(decisions)} reviewed ids are samples of the scanned "
            f"data (first: {shown}); {FIT_ADVICE}. A file of which some ids match is only "
            "warned about")
    shown = ", ".join(repr(i) for i in unmatched[:3]) + (", ..." if len(unmatched) > 3 else "")
    return (f"--reviewed: {len(unmatched)} of {len(decisions)} decision(s) name ids not in the "
            f"data ({shown}); they mark nothing. Were they made for another dataset or another "
            "--id-column? To re-scan a corrected copy, pass its changes.csv")
