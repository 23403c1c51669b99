"""Every CSV labelaudit writes reads back to exactly the cells it meant, whatever they hold.

A lone carriage return inside a value ends the row for every CSV reader unless the field is
quoted; so do line separators that only some readers honour. Written, then read back with the
reader labelaudit itself uses, every cell must come back unchanged.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelaudit.apply import apply_decisions
from labelaudit.data import load_dataset
from labelaudit.decisions import DECISION_COLUMNS, read_decisions
from labelaudit.outputs import write_csv

from .conftest import write_digit_folder

# Pieces that break naive CSV: line ends of every kind, quotes, separators, spaces, formula
# prefixes; mixed with any other character.
HOSTILE = ["\r", "\n", "\r\n", '"', ",", "\t", "\u2028", "\u2029", "\u0085", "\x0b", "\x0c",
           "\x1c", " ", "=", "+", "-", "@", "'", "é", "a", "0", "NA", "null"]
CELL = st.lists(st.sampled_from(HOSTILE) | st.characters(exclude_categories=["Cs"],
                                                          exclude_characters="\x00"),
                max_size=8).map("".join)
NAME = CELL.filter(lambda s: s.strip() != "" and not s.startswith("Unnamed"))
FAST = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def read_back(path, *, sep: str = ",") -> pd.DataFrame:
    """The product's reader for its own CSVs (read_decisions, apply's table reader)."""
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                       encoding="utf-8", low_memory=False)


def cells(frame) -> list:
    """Header and cells as plain lists (pandas' text dtypes differ between versions)."""
    return [list(frame.columns)] + frame.to_numpy().tolist()


@st.composite
def frames(draw, *, min_rows: int = 0):
    columns = draw(st.lists(NAME, min_size=1, max_size=4, unique=True))
    n = draw(st.integers(min_rows, 6))
    return pd.DataFrame({c: draw(st.lists(CELL, min_size=n, max_size=n)) for c in columns},
                        columns=columns, dtype=object)


@FAST
@given(frame=frames(), sep=st.sampled_from([",", "\t"]))
def test_write_csv_reads_back_exactly(tmp_path, frame, sep):
    path = tmp_path / "out.csv"
    write_csv(frame, path, sep=sep)
    back = read_back(path, sep=sep)
    assert list(back.columns) == list(frame.columns)
    assert back.to_numpy().tolist() == frame.to_numpy().tolist()
    with open(path, encoding="utf-8", newline="") as handle:  # and so does Python's csv module
        rows = list(csv.reader(handle, delimiter=sep))
    assert rows == [list(frame.columns)] + frame.to_numpy().tolist()


@st.composite
def tables(draw):
    """A labelled table with hostile ids, labels and text cells, and decisions on it."""
    n = draw(st.integers(6, 9))
    ids = draw(st.lists(NAME, min_size=n, max_size=n, unique=True))
    classes = draw(st.lists(NAME, min_size=2, max_size=3, unique=True))
    labels = [classes[k % len(classes)] for k in range(n)]
    frame = pd.DataFrame({
        "id": ids,
        "x": [str(k % 3) for k in range(n)],
        "note": draw(st.lists(CELL, min_size=n, max_size=n)),
        "label": labels,
    }, dtype=object)
    relabel = draw(st.integers(0, n - 1))
    remove = draw(st.integers(0, n - 1).filter(lambda k: k != relabel))
    new_label = classes[(classes.index(labels[relabel]) + 1) % len(classes)]
    decisions = pd.DataFrame([
        (ids[relabel], labels[relabel], "relabel", new_label),
        (ids[remove], labels[remove], "remove", ""),
    ], columns=list(DECISION_COLUMNS))
    return frame, decisions, relabel, remove, new_label


@FAST
@given(case=tables(), suffix=st.sampled_from([".csv", ".tsv"]))
def test_apply_table_copies_read_back_exactly(tmp_path, case, suffix):
    frame, decisions, relabel, remove, new_label = case
    sep = "\t" if suffix == ".tsv" else ","
    folder = tmp_path / f"case-{np.random.default_rng().integers(1 << 62)}"
    folder.mkdir()
    source = folder / f"table{suffix}"
    write_csv(frame, source, sep=sep)
    assert cells(read_back(source, sep=sep)) == cells(frame)  # the input is what it means

    apply_decisions(source, decisions, folder / "fixed", id_column="id")
    expected = frame.copy()
    expected.loc[relabel, "label"] = new_label
    expected = expected.drop(index=remove).reset_index(drop=True)
    assert cells(read_back(folder / "fixed" / source.name, sep=sep)) == cells(expected)
    changes = read_decisions(folder / "fixed" / "changes.csv")
    assert cells(changes[list(DECISION_COLUMNS)]) == cells(decisions)
    ds = load_dataset(folder / "fixed" / source.name, id_column="id")
    assert list(ds.ids) == expected["id"].tolist()
    assert [ds.classes[c] for c in ds.labels] == expected["label"].tolist()


# -- issues.csv and history.csv (scan.write_outputs) ---------------------------------------------


def test_issues_csv_reads_back_with_carriage_returns_in_ids_and_labels(tmp_path):
    from labelaudit.scan import ScanSettings, scan, write_outputs

    root = tmp_path / "digits"
    write_digit_folder(root, n_per_class=10)
    (root / "7").rename(root / "se\rven")
    for path in sorted((root / "0").iterdir())[:3]:
        path.rename(path.with_name(f"x\r{path.name}"))
    result = scan(root, ScanSettings(epochs=2, cv=2, audit="always"))
    write_outputs(result, tmp_path / "report")
    issues = read_back(tmp_path / "report" / "issues.csv")
    assert sorted(issues["id"]) == sorted(result.dataset.ids)
    assert set(issues["given_label"]) == {"0", "1", "se\rven"}
    assert len(read_back(tmp_path / "report" / "history.csv")) == len(result.history)


def test_report_decisions_export_reads_back_exactly(tmp_path):
    """report.js's csvField, run in node, on hostile values; read back as apply reads it."""
    import json
    import random
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = (Path(__file__).resolve().parent.parent / "labelaudit" / "templates" /
              "report.js").read_text(encoding="utf-8")
    start = script.index("function csvField(value)")
    function = script[start:script.index("\n  }\n", start) + 4]
    rng = random.Random(0)
    pieces = HOSTILE + ["\u00a0", "\u3000", "\ufeff", "x", "7 <i>"]

    def value():
        return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))

    rows = [[f"{k}{value()}", value(), "relabel", value() + "z"] for k in range(300)]
    rows += [[f"k{k}{value()}", value(), "keep", ""] for k in range(50)]
    # decisionsCsv() in report.js: a header, then csvField on each cell, CRLF line ends.
    program = function + """
      var rows = JSON.parse(require("fs").readFileSync(0, "utf8"));
      var lines = ["id,given_label,decision,new_label"];
      rows.forEach(function (row) { lines.push(row.map(csvField).join(",")); });
      process.stdout.write(lines.join("\\r\\n") + "\\r\\n");
    """
    done = subprocess.run([node, "-e", program], input=json.dumps(rows).encode(),
                          capture_output=True, check=True, timeout=60)
    (tmp_path / "decisions.csv").write_bytes(done.stdout)
    back = read_decisions(tmp_path / "decisions.csv")
    assert back.to_numpy().tolist() == rows
