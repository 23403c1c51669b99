"""labelaudit apply: decisions become a corrected copy; the original is never touched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from labelaudit.apply import apply_decisions
from labelaudit.cli import app
from labelaudit.data import load_dataset
from labelaudit.decisions import (
    DECISION_COLUMNS,
    check_decisions,
    mark_reviewed,
    read_decisions,
    with_moved_paths,
)
from labelaudit.errors import UsageError

from .conftest import make_table, tree_hashes, write_digit_folder, write_table

runner = CliRunner()
HOSTILE_NAME = "<img src=x onerror=alert(1)>.png"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def write_decisions(path: Path, rows) -> Path:
    pd.DataFrame(rows, columns=list(DECISION_COLUMNS)).to_csv(path, index=False)
    return path


@pytest.fixture
def images(tmp_path) -> Path:
    root = tmp_path / "digits"
    write_digit_folder(root, n_per_class=4)
    (root / "1" / "img-0004.png").rename(root / "1" / HOSTILE_NAME)
    (root / "7" / "nested").mkdir()
    (root / "7" / "img-0008.png").rename(root / "7" / "nested" / "deep.png")
    (root / "README.txt").write_text("not a sample, copied as it is\n")
    return root


def label_of(ds) -> dict:
    return {i: ds.classes[c] for i, c in zip(ds.ids, ds.labels, strict=True)}


# -- images ------------------------------------------------------------------------------------


def test_images_relabel_remove_keep_into_a_copy(tmp_path, images):
    before = tree_hashes(images)
    decisions = write_decisions(tmp_path / "decisions.csv", [
        ("0/img-0000.png", "0", "relabel", "7"),
        (f"1/{HOSTILE_NAME}", "1", "relabel", "0"),
        ("7/nested/deep.png", "7", "relabel", "1"),
        ("0/img-0001.png", "0", "remove", ""),
        ("1/img-0005.png", "1", "keep", ""),
    ])
    out = tmp_path / "fixed"
    result = run("apply", images, decisions, "--out", out)
    assert result.exit_code == 0, result.output
    assert tree_hashes(images) == before  # the original is byte-for-byte unchanged

    fixed = load_dataset(out)
    labels = label_of(fixed)
    assert labels["7/img-0000.png"] == "7"
    assert labels[f"0/{HOSTILE_NAME}"] == "0"
    assert labels["1/nested/deep.png"] == "1"  # the rest of the relative path is kept
    assert "0/img-0001.png" not in labels and "0/img-0000.png" not in labels
    assert labels["1/img-0005.png"] == "1"
    assert fixed.n_samples == 12 - 1
    # Moved and untouched files are the same bytes as the originals.
    assert (out / "7/img-0000.png").read_bytes() == (images / "0/img-0000.png").read_bytes()
    assert (out / "0/img-0002.png").read_bytes() == (images / "0/img-0002.png").read_bytes()
    assert (out / "README.txt").read_text() == "not a sample, copied as it is\n"

    changes = pd.read_csv(out / "changes.csv", dtype=str, keep_default_na=False)
    assert list(changes.columns) == [*DECISION_COLUMNS, "old_path", "new_path"]
    row = changes.set_index("id").loc[f"1/{HOSTILE_NAME}"]
    assert (row.decision, row.new_label, row.new_path) == ("relabel", "0", f"0/{HOSTILE_NAME}")
    assert changes.set_index("id").loc["0/img-0001.png", "new_path"] == ""
    assert "2 removed" not in result.output and "1 removed" in result.output


def test_image_name_clash_in_the_new_class_gets_a_suffix(tmp_path):
    root = tmp_path / "pets"
    write_digit_folder(root, n_per_class=3, classes=(0, 1))
    (root / "1" / "img-0003.png").rename(root / "1" / "img-0000.png")  # same name as in 0/
    result = apply_decisions(root, pd.DataFrame({
        "id": ["0/img-0000.png"], "decision": ["relabel"], "new_label": ["1"]}), tmp_path / "out")
    assert result.changes["new_path"].tolist() == ["1/img-0000.from-0.png"]
    assert (tmp_path / "out/1/img-0000.png").read_bytes() == (root / "1/img-0000.png").read_bytes()
    assert (tmp_path / "out/1/img-0000.from-0.png").read_bytes() == \
        (root / "0/img-0000.png").read_bytes()


def test_dry_run_prints_changes_and_writes_nothing(tmp_path, images):
    decisions = write_decisions(tmp_path / "d.csv", [("0/img-0000.png", "0", "relabel", "1"),
                                                     ("0/img-0001.png", "0", "remove", "")])
    out = tmp_path / "fixed"
    result = run("apply", images, decisions, "--out", out, "--dry-run")
    assert result.exit_code == 0, result.output
    assert not out.exists()
    assert not list(tmp_path.glob(".fixed*"))
    assert "id,given_label,decision,new_label,old_path,new_path" in result.stdout
    assert "0/img-0000.png,0,relabel,1,0/img-0000.png,1/img-0000.png" in result.stdout
    assert "nothing written" in result.output


def test_existing_out_needs_force(tmp_path, images):
    decisions = write_decisions(tmp_path / "d.csv", [("0/img-0000.png", "0", "remove", "")])
    out = tmp_path / "fixed"
    assert run("apply", images, decisions, "--out", out).exit_code == 0
    again = run("apply", images, decisions, "--out", out)
    assert again.exit_code == 2
    assert "already exists" in again.output and "--force" in again.output
    write_decisions(decisions, [("0/img-0001.png", "0", "remove", "")])
    forced = run("apply", images, decisions, "--out", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert (out / "0/img-0000.png").exists() and not (out / "0/img-0001.png").exists()


def test_force_never_replaces_a_foreign_folder(tmp_path, images):
    decisions = write_decisions(tmp_path / "d.csv", [("0/img-0000.png", "0", "remove", "")])
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = run("apply", images, decisions, "--out", out, "--force")
    assert result.exit_code == 2
    assert (out / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("rows, words", [
    ([("0/nope.png", "0", "remove", "")], "not samples"),
    ([("0/img-0000.png", "0", "relabel", "cat")], "unknown class"),
    ([("0/img-0000.png", "0", "delete", "")], "unknown decision 'delete'"),
    ([("0/img-0000.png", "0", "relabel", "")], "relabel needs a new_label"),
    ([("0/img-0000.png", "0", "keep", "1")], "leave new_label empty"),
    ([("0/img-0000.png", "0", "keep", ""), ("0/img-0000.png", "0", "remove", "")],
     "more than one decision"),
    ([("../0/img-0000.png", "0", "remove", "")], "leave the dataset folder"),
    ([("0/../../etc/passwd", "0", "remove", "")], "leave the dataset folder"),
    ([("/etc/passwd", "0", "remove", "")], "leave the dataset folder"),
    ([("C:\\Windows\\x.png", "0", "remove", "")], "leave the dataset folder"),
    ([("0/img-0000.png", "1", "remove", "")], "the dataset changed since the report"),
])
def test_refusals_exit_2_and_write_nothing(tmp_path, images, rows, words):
    before = tree_hashes(images)
    decisions = write_decisions(tmp_path / "d.csv", rows)
    out = tmp_path / "fixed"
    result = run("apply", images, decisions, "--out", out)
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not out.exists()
    assert tree_hashes(images) == before


@pytest.mark.parametrize("content, words", [
    ("", "empty"),
    ("id,decision\n0/img-0000.png,keep\n", "missing column(s) new_label"),
    ("identifier,verdict\nx,keep\n", "missing column(s) id, decision, new_label"),
    ('id,decision,new_label\n"unterminated,keep,\n', "not a valid CSV"),
])
def test_malformed_decisions_files_are_refused(tmp_path, images, content, words):
    decisions = tmp_path / "d.csv"
    decisions.write_text(content)
    result = run("apply", images, decisions, "--out", tmp_path / "fixed")
    assert result.exit_code == 2
    assert words in " ".join(result.output.split())


def test_out_inside_or_around_the_input_is_refused(tmp_path, images):
    decisions = write_decisions(tmp_path / "d.csv", [("0/img-0000.png", "0", "remove", "")])
    inside = run("apply", images, decisions, "--out", images / "fixed")
    assert inside.exit_code == 2 and "inside the dataset" in inside.output
    around = run("apply", images, decisions, "--out", tmp_path, "--force")
    assert around.exit_code == 2
    assert not (images / "fixed").exists() and (images / "0/img-0000.png").exists()


def test_decisions_inside_a_forced_out_are_refused(tmp_path, images):
    out = tmp_path / "fixed"
    write_decisions(tmp_path / "d.csv", [("0/img-0000.png", "0", "remove", "")])
    assert run("apply", images, tmp_path / "d.csv", "--out", out).exit_code == 0
    inner = write_decisions(out / "more.csv", [("0/img-0001.png", "0", "remove", "")])
    result = run("apply", images, inner, "--out", out, "--force")
    assert result.exit_code == 2 and "inside --out" in result.output
    assert inner.exists()


# -- tables ------------------------------------------------------------------------------------


TABLE_TEXT = '''sample_id,width,note,label
007,1.50,"a, quoted ""note""",cat
008,2.00,,dog
009,NA,plain,cat
010,3.25,"multi
line",dog
011,1e3,x,
012,0.10,y,bird
'''


def test_csv_keeps_every_other_cell_as_written(tmp_path):
    data = tmp_path / "pets.csv"
    data.write_text(TABLE_TEXT)
    before = tree_hashes(data)
    decisions = write_decisions(tmp_path / "d.csv", [
        ("007", "cat", "relabel", "dog"), ("010", "dog", "remove", ""),
        ("012", "bird", "keep", "")])
    result = run("apply", data, decisions, "--out", tmp_path / "fixed", "--id-column", "sample_id")
    assert result.exit_code == 0, result.output
    assert tree_hashes(data) == before
    fixed = pd.read_csv(tmp_path / "fixed/pets.csv", dtype=str, keep_default_na=False)
    original = pd.read_csv(data, dtype=str, keep_default_na=False)
    expected = original[original["sample_id"] != "010"].reset_index(drop=True)
    expected.loc[0, "label"] = "dog"
    pd.testing.assert_frame_equal(fixed, expected)  # order, columns, '007', '1.50', 'NA' kept
    changes = pd.read_csv(tmp_path / "fixed/changes.csv", dtype=str, keep_default_na=False)
    assert list(changes.columns) == list(DECISION_COLUMNS)
    assert changes["id"].tolist() == ["007", "010", "012"]


def test_row_number_ids_and_unlabeled_rows(tmp_path):
    data = tmp_path / "pets.csv"
    data.write_text(TABLE_TEXT)
    # Row 4 has no label: it is not a sample, so it cannot be decided on, and is copied.
    refused = run("apply", data, write_decisions(tmp_path / "d.csv", [("4", "", "remove", "")]),
                  "--out", tmp_path / "a")
    assert refused.exit_code == 2 and "not samples" in refused.output
    # --id-column '' asks for row numbers even where a column looks like the id.
    result = apply_decisions(data, pd.DataFrame({"id": ["1"], "decision": ["remove"],
                                                 "new_label": [""]}), tmp_path / "b",
                             id_column="")
    fixed = pd.read_csv(result.written, dtype=str, keep_default_na=False)
    assert fixed["sample_id"].tolist() == ["007", "009", "010", "011", "012"]
    assert fixed["labelaudit_row"].tolist() == ["0", "2", "3", "4", "5"]


@pytest.mark.parametrize("suffix", [".tsv", ".parquet", ".jsonl"])
def test_other_table_formats_keep_format_types_and_order(tmp_path, suffix):
    frame, _ = make_table(n=30)
    frame["label"] = frame["label"].map({"alpha": 1, "beta": 2, "gamma": 3})  # numeric classes
    frame.insert(0, "key", [f"k{i}" for i in range(len(frame))])
    data = tmp_path / f"t{suffix}"
    if suffix == ".tsv":
        frame.to_csv(data, sep="\t", index=False)
    elif suffix == ".parquet":
        frame.to_parquet(data)
    else:
        frame.to_json(data, orient="records", lines=True)
    before = tree_hashes(data)
    first = str(frame.loc[0, "label"])
    new = "3" if first != "3" else "1"
    decisions = pd.DataFrame({"id": ["k0", "k5"], "decision": ["relabel", "remove"],
                              "new_label": [new, ""]})
    result = apply_decisions(data, decisions, tmp_path / "out", id_column="key")
    assert tree_hashes(data) == before
    assert result.written == tmp_path / "out" / data.name
    if suffix == ".parquet":
        fixed = pd.read_parquet(result.written)
        assert fixed.dtypes.equals(frame.dtypes)
    elif suffix == ".jsonl":
        lines = result.written.read_text().splitlines()
        assert json.loads(lines[0])["label"] == int(new)  # the number stays a number
        assert lines[1:3] == data.read_text().splitlines()[1:3]  # untouched lines byte for byte
        fixed = pd.read_json(result.written, lines=True)
    else:
        fixed = pd.read_csv(result.written, sep="\t")
    expected = frame.drop(index=5).reset_index(drop=True)
    expected.loc[0, "label"] = int(new)
    pd.testing.assert_frame_equal(fixed.reset_index(drop=True), expected, check_dtype=False)
    reloaded = load_dataset(result.written, id_column="key")
    assert label_of(reloaded)["k0"] == new and "k5" not in label_of(reloaded)


# -- decisions files and re-scan ---------------------------------------------------------------


def test_read_decisions_keeps_ids_as_text_and_accepts_a_bom(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("\ufeffid,given_label,decision,new_label\n007,a,Relabel ,b\n1.0,a,keep,\n"
                     .encode("utf-8"))
    decisions = read_decisions(path)
    assert decisions["id"].tolist() == ["007", "1.0"]
    assert decisions["decision"].tolist() == ["relabel", "keep"]


def test_mark_reviewed_takes_reviewed_rows_out_and_reranks():
    issues = pd.DataFrame({
        "id": ["a", "b", "c", "d", "e"],
        "given_label": ["x"] * 5, "suggested_label": ["y"] * 5,
        "label_quality": [0.1, 0.2, 0.3, 0.4, 0.9],
        "is_label_issue": [True, True, True, True, False],
        "rank": pd.array([1, 2, 3, 4, None], dtype="Int64"),
    })
    decisions = check_decisions(pd.DataFrame({"id": ["b", "e", "zzz"],
                                              "decision": ["remove", "keep", "keep"],
                                              "new_label": ["", "", ""]}))
    marked = mark_reviewed(issues, decisions)
    assert marked["reviewed"].tolist() == [False, True, False, False, True]
    assert marked["decision"].tolist() == ["", "remove", "", "", "keep"]
    assert marked["is_label_issue"].tolist() == [True, False, True, True, False]
    assert marked["rank"].tolist() == [1, pd.NA, 2, 3, pd.NA]
    assert issues["rank"].tolist() == [1, 2, 3, 4, pd.NA]  # the input is not modified


def test_changes_csv_marks_moved_images_for_a_rescan_of_the_copy(tmp_path, images):
    out = tmp_path / "fixed"
    apply_decisions(images, pd.DataFrame({"id": ["0/img-0000.png"], "decision": ["relabel"],
                                          "new_label": ["1"]}), out)
    issues = pd.DataFrame({"id": ["1/img-0000.png", "0/img-0002.png"],
                           "label_quality": [0.1, 0.2], "is_label_issue": [True, True],
                           "rank": pd.array([1, 2], dtype="Int64")})
    marked = mark_reviewed(issues, out / "changes.csv")
    assert marked["reviewed"].tolist() == [True, False]
    assert marked["rank"].tolist() == [pd.NA, 1]


def test_decisions_csv_finds_moved_images_in_the_copy_clash_included(tmp_path):
    root = tmp_path / "pets"
    write_digit_folder(root, n_per_class=3, classes=(0, 1))
    (root / "1" / "img-0003.png").rename(root / "1" / "img-0000.png")  # same name as in 0/
    decisions = pd.DataFrame({"id": ["0/img-0000.png", "0/img-0001.png", "1/img-0004.png"],
                              "given_label": ["0", "0", "1"],
                              "decision": ["relabel", "relabel", "keep"],
                              "new_label": ["1", "1", ""]})
    result = apply_decisions(root, decisions, tmp_path / "out")
    copy = load_dataset(tmp_path / "out")
    fitted = with_moved_paths(decisions, copy.ids)
    # The path apply chose for each, clash and all; a kept image keeps its id.
    assert fitted["new_path"].tolist() == [*result.changes["new_path"][:2], ""]
    issues = pd.DataFrame({"id": list(copy.ids), "label_quality": np.linspace(0, 1, len(copy.ids)),
                           "is_label_issue": True,
                           "rank": pd.array(range(1, len(copy.ids) + 1), dtype="Int64")})
    marked = mark_reviewed(issues, fitted).set_index("id")
    assert sorted(marked.index[marked["reviewed"]]) == \
        ["1/img-0000.from-0.png", "1/img-0001.png", "1/img-0004.png"]
    assert not marked.loc["1/img-0000.png", "reviewed"]  # the image that was there all along


def test_a_rescan_of_the_corrected_folder_takes_decisions_csv_and_quiet_change_log(tmp_path):
    root = tmp_path / "digits"
    write_digit_folder(root, n_per_class=30)
    decisions = write_decisions(tmp_path / "decisions.csv", [
        ("0/img-0000.png", "0", "relabel", "7"), ("1/img-0030.png", "1", "relabel", "0"),
        ("7/img-0060.png", "7", "remove", "")])
    assert run("apply", root, decisions, "--out", tmp_path / "fixed").exit_code == 0
    fast = ["--epochs", "2", "--cv", "2", "--audit", "always", "--no-cache"]
    with_decisions = run("scan", tmp_path / "fixed", "--out", tmp_path / "a", "--reviewed",
                         decisions, *fast)
    assert with_decisions.exit_code == 0, with_decisions.output
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["audit"]["n_reviewed"] == 2  # both moved images; the removed one is gone
    assert summary["dataset"]["warnings"] == []
    plain = run("scan", tmp_path / "fixed", "--out", tmp_path / "b", *fast)
    assert plain.exit_code == 0, plain.output
    assert "ignored" not in plain.output
    assert f"pass --reviewed {tmp_path / 'fixed' / 'changes.csv'} to leave" in \
        " ".join(plain.output.split())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flags=st.lists(st.booleans(), min_size=1, max_size=30), data=st.data())
def test_mark_reviewed_ranks_are_consecutive_in_quality_order(flags, data):
    n = len(flags)
    issues = pd.DataFrame({"id": [f"s{i}" for i in range(n)],
                           "label_quality": sorted(data.draw(st.lists(
                               st.floats(0, 1), min_size=n, max_size=n))),
                           "is_label_issue": flags})
    issues["rank"] = pd.array([None] * n, dtype="Int64")
    reviewed = data.draw(st.sets(st.sampled_from(list(issues["id"]))))
    decisions = pd.DataFrame({"id": sorted(reviewed), "decision": "keep", "new_label": ""})
    marked = mark_reviewed(issues, decisions)
    open_rows = marked[marked["is_label_issue"]]
    assert open_rows["rank"].tolist() == list(range(1, len(open_rows) + 1))
    assert not (marked["reviewed"] & marked["is_label_issue"]).any()
    assert set(marked.loc[marked["reviewed"], "id"]) == reviewed
    assert marked["rank"].isna().sum() == n - len(open_rows)


# -- hostile ids and labels (property-based) ---------------------------------------------------


_escaping = st.one_of(
    st.text(max_size=30),
    st.builds(lambda s: "../" + s, st.text(max_size=20)),
    st.builds(lambda s: "/" + s, st.text(max_size=20)),
    st.builds(lambda a, b: f"{a}/../../{b}", st.sampled_from(["0", "1", "7"]),
              st.text(max_size=10)),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(sample_id=_escaping, through_file=st.booleans())
def test_hostile_ids_are_refused_and_nothing_is_written(tmp_path, images, sample_id, through_file):
    before = tree_hashes(images)
    out = tmp_path / "fixed"
    decisions = pd.DataFrame({"id": [sample_id], "decision": ["remove"], "new_label": [""]})
    if through_file:
        path = tmp_path / "d.csv"
        decisions.to_csv(path, index=False)
        decisions = path
    with pytest.raises(UsageError) as error:
        apply_decisions(images, decisions, out)
    if not through_file and (sample_id.startswith(("../", "/")) or "/../" in sample_id):
        assert "leave the dataset folder" in str(error.value)
    assert not out.exists()
    assert tree_hashes(images) == before


_label = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1,
                 max_size=12).filter(lambda s: s.strip() == s and s != "" and s.isprintable())


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(names=st.lists(_label, min_size=2, max_size=3, unique=True))
def test_hostile_class_names_round_trip_through_apply(tmp_path, names):
    frame = pd.DataFrame({"key": [f"r{i}" for i in range(9)],
                          "x": [float(i) for i in range(9)],
                          "label": [names[i % len(names)] for i in range(9)]})
    data = tmp_path / "hostile.csv"
    frame.to_csv(data, index=False)
    try:
        ds = load_dataset(data, id_column="key")
    except UsageError:
        return  # the loader refuses some names (e.g. ones that read as missing); not apply's job
    old = label_of(ds)
    new = next(c for c in ds.classes if c != old["r0"])
    out = tmp_path / "out"
    result = apply_decisions(data, pd.DataFrame({"id": ["r0"], "decision": ["relabel"],
                                                 "new_label": [new]}), out, force=True,
                             id_column="key")
    fixed = label_of(load_dataset(result.written, id_column="key"))
    assert fixed == {**old, "r0": new}


def test_unicode_and_odd_ids_that_exist_are_applied(tmp_path):
    root = tmp_path / "odd"
    write_digit_folder(root, n_per_class=3, classes=(0, 1))
    odd = "naïve 'q\"uote' ,comma #1 ✓.png"
    (root / "0" / "img-0000.png").rename(root / "0" / odd)
    decisions = write_decisions(tmp_path / "d.csv", [(f"0/{odd}", "0", "relabel", "1")])
    result = run("apply", root, decisions, "--out", tmp_path / "fixed")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fixed" / "1" / odd).exists()


# -- issue 19: row-number ids survive apply; --out as a file; --reviewed that does not fit -----


def _numbered_table(tmp_path, suffix: str = ".csv") -> Path:
    frame = pd.DataFrame({"x": [float(i) for i in range(12)], "label": ["a", "b", "c"] * 4})
    return write_table(frame, tmp_path / f"table{suffix}")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_a_table_without_ids_keeps_its_row_numbers_in_labelaudit_row(tmp_path, suffix):
    from labelaudit.apply import ROW_COLUMN

    path = _numbered_table(tmp_path, suffix)
    decisions = pd.DataFrame({"id": ["3", "7", "8"], "decision": ["remove", "relabel", "keep"],
                              "new_label": ["", "a", ""]})
    result = apply_decisions(path, decisions, tmp_path / "fixed")
    assert result.row_column == ROW_COLUMN
    copy = load_dataset(result.written, id_column=ROW_COLUMN)
    # Every later row keeps its original number: row 7 is still '7' after row 3 went.
    assert copy.ids.tolist() == [str(i) for i in range(12) if i != 3]
    assert label_of(copy)["7"] == "a" and label_of(copy)["8"] == "c"
    from labelaudit.data import read_table

    assert read_table(result.written).columns.tolist()[-1] == ROW_COLUMN  # appended last


def test_a_table_with_an_id_column_gets_no_row_column(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"key": ["k1", "k2", "k3"], "x": [1, 2, 3], "label": ["a", "b", "a"]}).to_csv(
        path, index=False)
    result = apply_decisions(path, pd.DataFrame({"id": ["k1"], "decision": ["remove"],
                                                 "new_label": [""]}), tmp_path / "fixed",
                             id_column="key")
    assert result.row_column is None
    assert "labelaudit_row" not in (tmp_path / "fixed" / "t.csv").read_text()


def test_applying_to_a_corrected_copy_again_keeps_the_original_numbers(tmp_path):
    path = _numbered_table(tmp_path)
    first = apply_decisions(path, pd.DataFrame({"id": ["0"], "decision": ["remove"],
                                                "new_label": [""]}), tmp_path / "fix1.csv")
    # Its ids are the original row numbers in labelaudit_row, not the copy's row numbers.
    second = apply_decisions(first.written, pd.DataFrame(
        {"id": ["5"], "decision": ["remove"], "new_label": [""]}), tmp_path / "fix2.csv")
    frame = pd.read_csv(second.written)
    assert frame["labelaudit_row"].tolist() == [i for i in range(12) if i not in (0, 5)]


def test_a_rescan_finds_labelaudit_row_without_id_column(tmp_path):
    path = _numbered_table(tmp_path)
    result = apply_decisions(path, pd.DataFrame({"id": ["3"], "decision": ["remove"],
                                                 "new_label": [""]}), tmp_path / "fixed.csv")
    copy = load_dataset(result.written)
    assert copy.ids.tolist() == [str(i) for i in range(12) if i != 3]
    assert "labelaudit_row" not in list(copy.inputs.columns)  # an id, not a feature


def test_out_ending_in_the_table_suffix_is_the_corrected_file(tmp_path):
    path = _numbered_table(tmp_path)
    decisions = write_decisions(tmp_path / "d.csv", [("1", "b", "relabel", "a"),
                                                     ("2", "c", "remove", "")])
    out = tmp_path / "wine-fixed.csv"
    result = run("apply", path, decisions, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.is_file()
    log = tmp_path / "wine-fixed.changes.csv"
    assert read_decisions(log)["id"].tolist() == ["1", "2"]
    assert str(log) in result.output
    assert len(pd.read_csv(out)) == 11
    assert not list(tmp_path.glob(".*labelaudit*"))  # no draft left behind


def test_an_existing_out_file_is_replaced_only_with_force_and_its_change_log(tmp_path):
    path = _numbered_table(tmp_path)
    decisions = write_decisions(tmp_path / "d.csv", [("2", "c", "remove", "")])
    out = tmp_path / "fixed.csv"
    assert run("apply", path, decisions, "--out", out).exit_code == 0
    again = run("apply", path, decisions, "--out", out)
    assert again.exit_code == 2 and "--force" in again.output
    assert run("apply", path, decisions, "--out", out, "--force").exit_code == 0

    theirs = tmp_path / "theirs.csv"  # no change log beside it: not ours
    theirs.write_text("precious\n")
    refused = run("apply", path, decisions, "--out", theirs, "--force")
    assert refused.exit_code == 2 and "did not write it" in " ".join(refused.output.split())
    assert theirs.read_text() == "precious\n"
    (tmp_path / "theirs.changes.csv").write_text("not,a,change,log\n")
    refused = run("apply", path, decisions, "--out", theirs, "--force")
    assert refused.exit_code == 2 and "not a change log" in " ".join(refused.output.split())
    assert theirs.read_text() == "precious\n"


@pytest.mark.parametrize("out, words", [
    ("table.csv", "which is the dataset"),
    ("fixed.parquet", "keeps the format"),
    ("d.changes.csv", "pass --force"),
])
def test_out_file_refusals(tmp_path, out, words):
    path = _numbered_table(tmp_path)
    decisions = write_decisions(tmp_path / "d.csv", [("2", "c", "remove", "")])
    (tmp_path / "d.changes.csv").write_text("id,given_label,decision,new_label\n")
    before = tree_hashes(tmp_path)
    result = run("apply", path, decisions, "--out", tmp_path / out)
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split())
    assert tree_hashes(tmp_path) == before


def test_out_with_a_table_suffix_for_an_image_folder_is_refused(tmp_path, images):
    decisions = write_decisions(tmp_path / "d.csv", [("0/img-0000.png", "0", "remove", "")])
    result = run("apply", images, decisions, "--out", tmp_path / "fixed.csv")
    assert result.exit_code == 2 and "image folder" in result.output
    assert not (tmp_path / "fixed.csv").exists()


def test_reviewed_ids_that_fit_no_sample_are_refused(tmp_path):
    path = _numbered_table(tmp_path)
    decisions = write_decisions(tmp_path / "d.csv", [("row-9", "a", "keep", ""),
                                                     ("row-10", "b", "relabel", "a")])
    result = run("scan", path, "--out", tmp_path / "r", "--epochs", "1", "--cv", "2", "-q",
                 "--audit", "always", "--reviewed", decisions)
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "none of the 2 reviewed ids are samples" in message
    assert "before apply renumbered its rows" in message


def test_reviewed_row_numbers_of_shifted_rows_are_refused():
    issues = pd.DataFrame({"id": [str(i) for i in range(6)],
                           "given_label": ["a", "b", "c", "a", "b", "c"],
                           "label_quality": [.1] * 6, "is_label_issue": [True] * 6,
                           "rank": pd.array(range(1, 7), dtype="Int64")})
    # Made before row 0 was removed: every later id now names the row after it.
    shifted = pd.DataFrame({"id": ["1", "2", "3"], "given_label": ["a", "b", "c"],
                            "decision": ["keep", "relabel", "keep"], "new_label": ["", "a", ""]})
    with pytest.raises(UsageError, match="3 of 3 reviewed samples"):
        mark_reviewed(issues, shifted)
    fitting = shifted.assign(given_label=["b", "c", "a"])
    assert mark_reviewed(issues, fitting)["reviewed"].sum() == 3


def test_apply_finds_the_label_column_the_scan_was_told(tmp_path):
    """A scan told --label-column species; apply, not told, takes the one column that holds the
    decisions' labels, and writes what it would have written when told."""
    frame, _ = make_table(n=60, seed=3)
    frame = frame.rename(columns={"label": "species"})
    path = tmp_path / "flowers.csv"
    frame.to_csv(path, index=False)
    decisions = pd.DataFrame({"id": ["3", "7"], "given_label": [frame["species"][3],
                                                                frame["species"][7]],
                              "decision": ["relabel", "remove"],
                              "new_label": ["gamma" if frame["species"][3] != "gamma" else "beta",
                                            ""]})
    told = apply_decisions(path, decisions, tmp_path / "told.csv", label_column="species",
                           id_column="")
    guessed = apply_decisions(path, decisions, tmp_path / "guessed.csv", id_column="")
    assert guessed.counts == told.counts
    assert (tmp_path / "guessed.csv").read_bytes() == (tmp_path / "told.csv").read_bytes()


def test_apply_does_not_guess_between_two_label_like_columns(tmp_path):
    frame, _ = make_table(n=60, seed=3)
    frame = frame.rename(columns={"label": "species"})
    frame["copy_of_species"] = frame["species"]
    path = tmp_path / "flowers.csv"
    frame.to_csv(path, index=False)
    decisions = pd.DataFrame({"id": ["3"], "given_label": [frame["species"][3]],
                              "decision": ["remove"], "new_label": [""]})
    with pytest.raises(UsageError, match="no label column found"):
        apply_decisions(path, decisions, tmp_path / "out.csv", id_column="")
