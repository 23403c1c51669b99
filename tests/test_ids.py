"""Sample ids are chosen the same way for every kind of table (issue 19, defect 2).

A column named like an id (or apply's labelaudit_row) that is unique in every row becomes the
id, with a note; --id-column wins, --id-column '' asks for row numbers, and two equally good
candidates give row numbers and a warning naming both.
"""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit.cli import app
from labelaudit.data import load_dataset

N = 24


@pytest.fixture
def text_table(tmp_path):
    path = tmp_path / "posts.csv"
    pd.DataFrame({
        "doc_id": [f"d{i:03d}" for i in range(N)],
        "text": [("a long enough sentence about " + ("cats" if i % 2 else "dogs")) * 2
                 for i in range(N)],
        "label": ["cat" if i % 2 else "dog" for i in range(N)],
    }).to_csv(path, index=False)
    return path


def test_a_text_tables_doc_id_is_the_id_with_a_note(text_table):
    ds = load_dataset(text_table)
    assert ds.kind == "text" and ds.id_column == "doc_id"
    assert list(ds.ids[:2]) == ["d000", "d001"]
    assert ("using column 'doc_id' as the sample id (unique in every row); pass --id-column "
            "NAME to choose another, or --id-column '' for row numbers") in ds.warnings
    assert ds.describe()["id_column"] == "doc_id"


def test_the_note_reaches_stderr_and_summary(text_table, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["scan", str(text_table), "--out", str(out), "--cv", "2",
                                      "--audit", "always", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert "using column 'doc_id' as the sample id" in result.stderr
    issues = pd.read_csv(out / "issues.csv", dtype=str)
    assert set(issues["id"]) == {f"d{i:03d}" for i in range(N)}


def test_an_empty_id_column_asks_for_row_numbers(text_table):
    ds = load_dataset(text_table, id_column="")
    assert ds.id_column is None and list(ds.ids[:3]) == ["0", "1", "2"]
    assert not any("sample id" in w for w in ds.warnings)


def test_id_column_wins(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"sample_id": [f"s{i}" for i in range(N)], "code": [f"c{i}" for i in range(N)],
                  "x": range(N), "label": ["a", "b"] * (N // 2)}).to_csv(path, index=False)
    ds = load_dataset(path, id_column="code")
    assert ds.id_column == "code" and ds.ids[0] == "c0"
    assert "sample_id" in ds.inputs.columns and "code" not in ds.inputs.columns
    assert not any("as the sample id" in w for w in ds.warnings)


def test_ids_are_read_as_written(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("key,x,label\n" + "".join(f"{i:03d},{i % 5},{'ab'[i % 2]}\n"
                                                for i in range(N)))
    ds = load_dataset(path)
    assert ds.id_column == "key" and list(ds.ids[:2]) == ["000", "001"]
    assert list(ds.inputs.columns) == ["x"]


def test_labelaudit_row_from_apply_is_the_id(tmp_path):
    path = tmp_path / "fixed.csv"
    pd.DataFrame({"labelaudit_row": [i * 2 for i in range(N)],  # rows removed by apply
                  "item_id": [f"i{i}" for i in range(N)], "x": range(N),
                  "label": ["a", "b"] * (N // 2)}).to_csv(path, index=False)
    ds = load_dataset(path)
    assert ds.id_column == "labelaudit_row" and list(ds.ids[:3]) == ["0", "2", "4"]
    assert "labelaudit_row" not in ds.inputs.columns
    opted_out = load_dataset(path, id_column="")
    assert "labelaudit_row" not in opted_out.inputs.columns  # never a feature


def test_two_candidates_give_row_numbers_and_a_warning(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"order_id": [f"o{i}" for i in range(N)],
                  "user_id": [f"u{i}" for i in range(N)], "x": range(N),
                  "label": ["a", "b"] * (N // 2)}).to_csv(path, index=False)
    ds = load_dataset(path)
    assert ds.id_column is None and ds.ids[0] == "0"
    assert ("columns 'order_id', 'user_id' could each be the sample id; using row numbers "
            "instead of choosing one silently; pass --id-column NAME to choose") in ds.warnings


def test_an_exact_name_beats_other_id_names(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"id": [f"r{i}" for i in range(N)], "user_id": [f"u{i}" for i in range(N)],
                  "x": range(N), "label": ["a", "b"] * (N // 2)}).to_csv(path, index=False)
    assert load_dataset(path).id_column == "id"


def test_a_repeated_id_name_is_not_the_id(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"cluster_id": [i % 3 for i in range(N)], "x": range(N),
                  "label": ["a", "b"] * (N // 2)}).to_csv(path, index=False)
    ds = load_dataset(path)
    assert ds.id_column is None and ds.inputs["cluster_id"].dtype == "int64"
