"""apply on hostile datasets: symlinked samples, raw line separators in JSONL, odd characters.

The corrected copy holds exactly the samples the scan saw, with the decisions applied, and
changes.csv never lists a change that the copy does not show.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit.apply import _with_row_number, apply_decisions
from labelaudit.cli import app
from labelaudit.data import load_dataset, read_table
from labelaudit.decisions import DECISION_COLUMNS, read_decisions, reviewed_warning
from labelaudit.errors import UsageError

from .conftest import make_table, tree_hashes, write_digit_folder

runner = CliRunner()


def decisions_frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(DECISION_COLUMNS))


def label_of(ds) -> dict:
    return {str(i): ds.classes[c] for i, c in zip(ds.ids, ds.labels, strict=True)}


def expected_labels(before: dict, changes: pd.DataFrame) -> dict:
    """What loading the corrected copy must show, derived from changes.csv alone."""
    after = dict(before)
    for row in changes.itertuples(index=False):
        if row.decision == "remove":
            del after[row.id]
        elif row.decision == "relabel":
            del after[row.id]
            after[row.new_path] = row.new_label
    return after


# -- symlinks inside the dataset -----------------------------------------------------------------


@pytest.fixture
def linked(tmp_path) -> Path:
    """Digits 0/1/7 with every kind of symlink the loader meets.

    0/linked -> ../.shared, 1/linked -> ../.shared (a hidden folder inside the dataset: its
      images are samples of class 0 and of class 1, under these names)
    0/linked2 -> ../.shared (a second link to a folder the class read: not read again)
    0/a_link -> z_real, 0/z_real/ (the real folder is read through the link, not again)
    0/alias.png -> img-0000.png (a second id for the same file)
    0/to7 -> ../7, seven -> 7 (links into another class: skipped by the loader)
    1/outside.png -> a file outside the dataset; 1/broken.png -> nothing
    """
    root = tmp_path / "data" / "digits"
    write_digit_folder(root, n_per_class=4)
    (root / ".shared").mkdir()
    for name in ("img-0008.png", "img-0009.png"):
        (root / "7" / name).rename(root / ".shared" / name)
    os.symlink("../.shared", root / "0" / "linked")
    os.symlink("../.shared", root / "1" / "linked")
    os.symlink("../.shared", root / "0" / "linked2")
    (root / "0" / "z_real").mkdir()
    (root / "1" / "img-0005.png").rename(root / "0" / "z_real" / "moved.png")
    os.symlink("z_real", root / "0" / "a_link")
    os.symlink("img-0000.png", root / "0" / "alias.png")
    os.symlink("../7", root / "0" / "to7")
    os.symlink("7", root / "seven")
    (root / "0" / "img-0001.png").rename(tmp_path / "data" / "outside.png")
    os.symlink(tmp_path / "data" / "outside.png", root / "1" / "outside.png")
    os.symlink("gone.png", root / "1" / "broken.png")
    return root


def test_the_loader_sees_the_linked_ids_this_test_relies_on(linked):
    ids = set(label_of(load_dataset(linked)))
    assert {"0/linked/img-0008.png", "1/linked/img-0008.png", "0/a_link/moved.png",
            "0/alias.png", "0/img-0000.png"} <= ids
    assert not any(i.startswith(("0/linked2/", "0/z_real/", "0/to7/", "seven/")) for i in ids)
    assert "1/outside.png" not in ids and "1/broken.png" not in ids


def test_decisions_through_symlinks_are_carried_out_in_the_copy(tmp_path, linked):
    before_hashes = tree_hashes(tmp_path / "data")
    before = label_of(load_dataset(linked))
    decisions = decisions_frame([
        ("0/linked/img-0008.png", "0", "relabel", "1"),
        ("1/linked/img-0009.png", "1", "remove", ""),  # 0/linked/img-0009.png: the same file
        ("0/a_link/moved.png", "0", "relabel", "7"),
        ("0/img-0000.png", "0", "remove", ""),  # 0/alias.png is a link to it
        ("0/alias.png", "0", "relabel", "7"),
        ("0/linked/img-0009.png", "0", "keep", ""),
    ])
    result = apply_decisions(linked, decisions, tmp_path / "fixed")
    changes = read_decisions(tmp_path / "fixed" / "changes.csv")
    after = label_of(load_dataset(tmp_path / "fixed"))
    assert after == expected_labels(before, changes)
    assert result.counts["remove"] == 2 and result.counts["relabel"] == 3
    assert len(after) == result.counts["n_samples"] - result.counts["remove"]
    assert {"0/linked/img-0009.png", "7/a_link/moved.png", "7/alias.png"} <= set(after)
    assert tree_hashes(tmp_path / "data") == before_hashes


def test_no_removed_sample_comes_back_through_another_link(tmp_path, linked):
    removed = ["7/img-0010.png", "0/linked/img-0009.png", "0/alias.png", "0/img-0002.png",
               "0/a_link/moved.png"]
    decisions = decisions_frame([(i, "", "remove", "") for i in removed])
    apply_decisions(linked, decisions, tmp_path / "fixed")
    after = set(label_of(load_dataset(tmp_path / "fixed")))
    assert not after & set(removed)
    assert after == set(label_of(load_dataset(linked))) - set(removed)


def test_the_copy_keeps_no_link_that_could_add_or_lose_a_sample(tmp_path, linked):
    apply_decisions(linked, decisions_frame([("0/img-0002.png", "0", "keep", "")]),
                    tmp_path / "fixed")
    fixed = tmp_path / "fixed"
    links = sorted(p.relative_to(fixed).as_posix() for p in fixed.rglob("*") if p.is_symlink())
    # Links that lead outside (or nowhere) stay links to the very same place, never read.
    assert links == ["1/broken.png", "1/outside.png"]
    assert (fixed / "1" / "outside.png").resolve() == (tmp_path / "data" / "outside.png")
    assert not (fixed / "1" / "broken.png").exists()
    assert (fixed / ".shared" / "img-0008.png").is_file()  # hidden files are copied as they are
    assert label_of(load_dataset(fixed)) == label_of(load_dataset(linked))


def test_an_id_through_a_symlink_leading_outside_is_refused_up_front(tmp_path, linked):
    outside = tmp_path / "data" / "extra"
    write_digit_folder(outside, n_per_class=1, classes=(0,))
    os.symlink(outside / "0", linked / "1" / "more")
    decisions = tmp_path / "decisions.csv"
    decisions_frame([("1/more/img-0000.png", "1", "remove", "")]).to_csv(decisions, index=False)
    result = runner.invoke(app, ["apply", str(linked), str(decisions), "--out",
                                 str(tmp_path / "fixed")])
    assert result.exit_code == 2, result.output
    assert "symlink leading outside" in result.output
    assert not (tmp_path / "fixed").exists()


# -- JSONL with raw line separators -------------------------------------------------------------


def test_jsonl_with_raw_unicode_line_separators_is_applied(tmp_path):
    records = [{"text": f"post {i}", "label": "ab"[i % 2]} for i in range(8)]
    records[1]["text"] = "one\u2028two\u0085three\u2029four\x1c\x1d\x1e five"
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    lines[4] = lines[4] + "\r"  # a CRLF line, and blank lines, as pandas reads them
    source = tmp_path / "posts.jsonl"
    source.write_bytes(("\n".join(lines[:6]) + "\n\n  \n" + "\n".join(lines[6:]))
                       .encode("utf-8"))
    assert len(read_table(source)) == 8  # the loader reads 8 rows
    decisions = decisions_frame([("1", "b", "remove", ""), ("2", "a", "relabel", "b"),
                                 ("5", "b", "relabel", "a")])
    apply_decisions(source, decisions, tmp_path / "fixed")
    written = tmp_path / "fixed" / "posts.jsonl"
    frame = read_table(written)
    assert frame["label"].tolist() == ["a", "b", "b", "a", "a", "a", "b"]
    assert frame["text"].tolist() == [r["text"] for k, r in enumerate(records) if k != 1]
    copied = written.read_bytes().split(b"\n")
    for k in (0, 3, 4, 6, 7):  # lines without a decision are copied byte for byte, but for
        # the original row number apply appends (the file has no id column)
        assert _with_row_number(lines[k], k).encode("utf-8") in copied


# -- values holding carriage returns -------------------------------------------------------------


def test_carriage_returns_in_table_values_survive_apply_and_dry_run(tmp_path):
    from labelaudit.outputs import write_csv

    frame = pd.DataFrame({
        "id": [f"r{i}\r" if i % 3 == 0 else f"r\r\n{i}" for i in range(30)],
        "x": [float(i % 7) for i in range(30)],
        "note": ["a\rb", "=1+2", " lead", "tab\there", 'q"uote', "x\u2028y"] * 5,
        "label": ["c\rat", "dog"] * 15,
    })
    source = tmp_path / "table.csv"
    write_csv(frame, source)
    decisions = tmp_path / "decisions.csv"
    rows = [("r0\r", "c\rat", "relabel", "dog"), ("r\r\n1", "dog", "remove", "")]
    write_csv(decisions_frame(rows), decisions)

    dry = runner.invoke(app, ["apply", str(source), str(decisions), "--out",
                              str(tmp_path / "fixed"), "--id-column", "id", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    # (Result.stdout turns CRLF into LF; the bytes are what a pipe gets.)
    printed = pd.read_csv(io.BytesIO(dry.stdout_bytes), dtype=str, keep_default_na=False)
    assert printed["id"].tolist() == ["r0\r", "r\r\n1"]

    apply_decisions(source, decisions, tmp_path / "fixed", id_column="id")
    copy = pd.read_csv(tmp_path / "fixed" / "table.csv", dtype=str, keep_default_na=False)
    assert len(copy) == 29
    assert copy["id"].tolist() == [i for i in frame["id"] if i != "r\r\n1"]
    assert copy["label"].tolist() == ["dog"] + frame["label"].tolist()[2:]
    assert copy["note"].tolist() == [v for k, v in enumerate(frame["note"]) if k != 1]
    changes = read_decisions(tmp_path / "fixed" / "changes.csv")
    assert changes["id"].tolist() == ["r0\r", "r\r\n1"]
    # The second pass: the copy and its changes.csv are valid input again.
    again = apply_decisions(tmp_path / "fixed" / "table.csv",
                            decisions_frame([("r0\r", "dog", "keep", "")]),
                            tmp_path / "fixed2", id_column="id")
    assert again.counts["n_samples"] == 29


# -- scan --reviewed with ids that are not in the data -------------------------------------------


def test_reviewed_ids_not_in_the_data_are_named_on_stderr_and_in_summary(tmp_path):
    frame, _ = make_table(n=60)
    frame.insert(0, "sample_id", [f"s{i}" for i in range(60)])
    frame.to_csv(tmp_path / "table.csv", index=False)
    decisions = tmp_path / "decisions.csv"
    decisions_frame([
        ("s0", "", "keep", ""), ("s1", "", "remove", ""), ("nope-1", "", "keep", ""),
        ("nope-2", "", "remove", ""),  # a removal may be missing: the corrected copy lacks it
        ("nope-3", "", "relabel", "beta"), ("nope-4", "", "keep", ""), ("nope-5", "", "keep", ""),
    ]).to_csv(decisions, index=False)
    result = runner.invoke(app, [
        "scan", str(tmp_path / "table.csv"), "--out", str(tmp_path / "report"), "--id-column",
        "sample_id", "--reviewed", str(decisions), "--epochs", "2", "--cv", "2", "--audit",
        "always", "--no-cache"])
    assert result.exit_code == 0, result.output
    expected = ("--reviewed: 4 of 7 decision(s) name ids not in the data ('nope-1', 'nope-3', "
                "'nope-4', ...); they mark nothing.")
    assert expected in " ".join(result.stderr.split())
    summary = json.loads((tmp_path / "report" / "summary.json").read_text(encoding="utf-8"))
    assert any(w.startswith(expected) for w in summary["dataset"]["warnings"])
    assert summary["audit"]["n_reviewed"] == 2


def test_reviewed_warning_spares_a_rescan_of_the_corrected_copy(tmp_path):
    root = tmp_path / "digits"
    write_digit_folder(root, n_per_class=4)
    apply_decisions(root, decisions_frame([("0/img-0000.png", "0", "relabel", "1"),
                                           ("0/img-0001.png", "0", "remove", "")]),
                    tmp_path / "fixed")
    changes = read_decisions(tmp_path / "fixed" / "changes.csv")
    assert reviewed_warning(load_dataset(tmp_path / "fixed").ids, changes) is None
    assert reviewed_warning(load_dataset(root).ids, changes) is None
    # Decisions for another dataset altogether (no id matches): refused, not warned about.
    with pytest.raises(UsageError, match=r"none of the 2 reviewed ids are samples of the "
                                         r"scanned data \(first: '0/img-0000.png'"):
        reviewed_warning(["a.png", "b.png"], changes)


def test_a_move_that_would_write_through_a_link_is_refused_up_front(tmp_path, linked):
    outside = tmp_path / "data" / "elsewhere"
    outside.mkdir()
    (linked / "1" / "linked").unlink()
    os.symlink(outside, linked / "1" / "linked")  # where 0/linked/* would move to
    with pytest.raises(UsageError, match="1/linked in the dataset is a file or a symlink"):
        apply_decisions(linked, decisions_frame([("0/linked/img-0008.png", "0", "relabel", "1")]),
                        tmp_path / "fixed")
    assert not (tmp_path / "fixed").exists() and not any(outside.iterdir())
