"""A model of the user's own: --pred-probs and --history in a scan, and the readers of the
probabilities and vectors they bring (labelaudit.inputs)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from labelaudit import gap
from labelaudit.cli import app
from labelaudit.data import load_dataset
from labelaudit.errors import UsageError
from labelaudit.inputs import read_embeddings, read_pred_probs
from labelaudit.scan import YOUR_LOG_STEEP_ADVICE

from .conftest import make_text_table, write_digit_folder, write_table

CLASSES = ("setosa", "versicolor", "virginica")


def iris_table(path: Path, *, flips=()) -> tuple[pd.DataFrame, np.ndarray]:
    """Iris as a table with a `sample_id` column, the samples in `flips` given the next class;
    returns (the table, the true labels)."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    given = iris.target.copy()
    given[list(flips)] = (given[list(flips)] + 1) % 3
    frame = pd.DataFrame(iris.data, columns=["sl", "sw", "pl", "pw"])
    frame.insert(0, "sample_id", [f"s{i:03d}" for i in range(len(frame))])
    frame["label"] = np.array(CLASSES)[given]
    frame.to_csv(path, index=False)
    return frame, iris.target


def out_of_fold(frame: pd.DataFrame) -> np.ndarray:
    """scikit-learn's out-of-fold probabilities of a logistic regression on the table."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    labels = pd.Categorical(frame["label"], categories=CLASSES).codes
    return cross_val_predict(LogisticRegression(max_iter=1000), frame[["sl", "sw", "pl", "pw"]],
                             labels, cv=5, method="predict_proba")


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    """(the loaded dataset, its table, out-of-fold probabilities, a folder for files)."""
    root = tmp_path_factory.mktemp("iris")
    frame, _ = iris_table(root / "iris.csv")
    ds = load_dataset(root / "iris.csv", id_column="sample_id")
    return ds, frame, out_of_fold(frame).astype(np.float32), root


def probs_table(frame, probs, *, id_column="sample_id", seed=None) -> pd.DataFrame:
    """The probabilities keyed by id, rows and class columns shuffled when `seed` is given."""
    table = pd.DataFrame(probs, columns=list(CLASSES))
    table.insert(0, id_column, frame["sample_id"])
    if seed is not None:
        rng = np.random.default_rng(seed)
        table = table.iloc[rng.permutation(len(table))]
        table = table[[id_column, *rng.permutation(list(CLASSES))]]
    return table


def refused(reader, path, ds) -> str:
    with pytest.raises(UsageError) as caught:
        reader(path, ds)
    return str(caught.value)


# -- read_pred_probs ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_a_shuffled_table_reads_as_the_npy_does(iris, suffix):
    ds, frame, probs, root = iris
    table = probs_table(frame, probs, seed=1)
    path = write_table(table, root / f"shuffled{suffix}")
    np.save(root / "probs.npy", probs)
    from_npy = read_pred_probs(root / "probs.npy", ds)
    assert from_npy.dtype == np.float32 and from_npy.shape == (150, 3)
    np.testing.assert_allclose(read_pred_probs(path, ds), from_npy, atol=1e-6)


def test_the_id_column_may_be_named_id(iris):
    ds, frame, probs, root = iris
    probs_table(frame, probs, id_column="id").to_csv(root / "by-id.csv", index=False)
    np.testing.assert_allclose(read_pred_probs(root / "by-id.csv", ds), probs, atol=1e-6)


def test_rows_within_the_tolerance_are_renormalised(iris):
    ds, frame, probs, root = iris
    np.save(root / "scaled.npy", probs * 1.0005)
    np.testing.assert_allclose(read_pred_probs(root / "scaled.npy", ds).sum(axis=1), 1,
                               atol=1e-6)


def bad_cell(table, row, column, value):
    table = table.astype(object)
    table.iloc[row, table.columns.get_loc(column)] = value
    return table


TABLE_FAULTS = {  # name -> (how the table is spoiled, what the message must say)
    "missing id": (lambda t: bad_cell(t, 4, "sample_id", ""),
                   "row 5 below the header has no id"),
    "duplicate id": (lambda t: bad_cell(t, 7, "sample_id", "s003"),
                     "row 8 below the header (id 's003') repeats the id 's003'"),
    "unknown id": (lambda t: bad_cell(t, 2, "sample_id", "zz9"),
                   "row 3 below the header (id 'zz9') has the id 'zz9', which is not in the "
                   "dataset"),
    "missing sample": (lambda t: t.drop(index=[10, 11]),
                       "no row for the sample 's010' (2 of 150 samples missing)"),
    "missing class": (lambda t: t.drop(columns=["virginica"]),
                      "no column for the class(es) 'virginica'"),
    "extra column": (lambda t: t.assign(label="x"), "unknown column(s) 'label'"),
    "no id column": (lambda t: t.rename(columns={"sample_id": "key"}), "no id column"),
    "text cell": (lambda t: bad_cell(t, 6, "versicolor", "high"),
                  "row 7 below the header (id 's006'), column 'versicolor' holds 'high', "
                  "not a number"),
    "empty cell": (lambda t: bad_cell(t, 9, "setosa", ""),
                   "row 10 below the header (id 's009'), column 'setosa' is empty"),
    "infinite": (lambda t: bad_cell(t, 3, "setosa", "inf"),
                 "row 4 below the header (id 's003') holds inf"),
    "negative": (lambda t: bad_cell(t, 5, "setosa", -0.2),
                 "row 6 below the header (id 's005') holds -0.2 (column 1); probabilities lie "
                 "between 0 and 1"),
    "above one": (lambda t: bad_cell(t, 1, "virginica", 3.5), "holds 3.5 (column 3)"),
    "bad sum": (lambda t: bad_cell(t, 8, "virginica", t["virginica"].iloc[8] + 0.1),
                "row 9 below the header (id 's008') sums to 1.1, not 1 (1 such row(s))"),
}


@pytest.mark.parametrize("fault", TABLE_FAULTS)
def test_every_fault_in_a_table_is_refused_at_its_first_row(iris, fault):
    ds, frame, probs, root = iris
    spoil, said = TABLE_FAULTS[fault]
    path = root / f"fault-{fault.replace(' ', '-')}.csv"
    spoil(probs_table(frame, probs)).to_csv(path, index=False)
    assert said in refused(read_pred_probs, path, ds)


def test_the_first_bad_row_is_the_first_in_the_file(iris):
    ds, frame, probs, root = iris
    table = probs_table(frame, probs).iloc[::-1]  # the file's first row is the dataset's last
    table = bad_cell(bad_cell(table, 0, "setosa", 2.0), 5, "setosa", 3.0)
    table.to_csv(root / "reversed.csv", index=False)
    assert "row 1 below the header (id 's149') holds 2" in refused(
        read_pred_probs, root / "reversed.csv", ds)


NPY_FAULTS = {
    "one dimension": (lambda p: p[:, 0], "a 1-D array of shape (150,)"),
    "too few rows": (lambda p: p[:-1], "shape (149, 3), but the dataset needs (150, 3)"),
    "too many classes": (lambda p: np.hstack([p, p[:, :1]]), "one column per class (3: "),
    "objects": (lambda p: p.astype(object), "an array of Python objects"),
    "text": (lambda p: p.astype(str), "holds <U32 values"),
    "nan": (lambda p: np.where(np.arange(150)[:, None] == 12, np.nan, p),
            "array row 12 (id 's012') holds nan"),
    "logits": (lambda p: np.log(p + 1e-9), "not its logits"),
}


@pytest.mark.parametrize("fault", NPY_FAULTS)
def test_every_fault_in_an_npy_is_refused(iris, fault):
    ds, _, probs, root = iris
    spoil, said = NPY_FAULTS[fault]
    path = root / f"fault-{fault.replace(' ', '-')}.npy"
    np.save(path, spoil(probs), allow_pickle=True)
    assert said in refused(read_pred_probs, path, ds)


def test_unreadable_and_unknown_files_are_refused(iris):
    ds, _, _, root = iris
    (root / "probs.txt").write_text("0.5 0.5\n")
    (root / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    (root / "empty.csv").write_text("")
    assert "unknown file type '.txt'" in refused(read_pred_probs, root / "probs.txt", ds)
    assert "no such file" in refused(read_pred_probs, root / "absent.npy", ds)
    assert "cannot read it as .npy" in refused(read_pred_probs, root / "broken.npy", ds)
    assert "the file is empty" in refused(read_pred_probs, root / "empty.csv", ds)


def test_image_ids_are_paths_and_skipped_files_may_keep_their_rows(tmp_path):
    root = tmp_path / "digits"
    write_digit_folder(root, n_per_class=6)
    (root / "7" / "broken.png").write_bytes(b"not an image")
    ds = load_dataset(root)
    assert ds.ids[0] == "0/img-0000.png" and len(ds.skipped) == 1
    probs = np.full((ds.n_samples, 3), 1 / 3)
    table = pd.DataFrame(probs, columns=list(ds.classes))
    table.insert(0, "id", list(ds.ids))
    skipped_row = pd.DataFrame([["7/broken.png", 0.2, 0.3, 0.5]], columns=table.columns)
    pd.concat([skipped_row, table]).to_csv(tmp_path / "p.csv", index=False)
    assert read_pred_probs(tmp_path / "p.csv", ds).shape == (ds.n_samples, 3)
    np.save(tmp_path / "p.npy", np.full((ds.n_samples + 1, 3), 1 / 3))
    said = refused(read_pred_probs, tmp_path / "p.npy", ds)
    assert "1 sample(s) were skipped while loading" in said


# -- read_embeddings ----------------------------------------------------------------------------


def vector_parquet(path, ids, vectors, *, id_column="sample_id"):
    pq.write_table(pa.table({id_column: list(ids), "vector": list(vectors)}), path)


def test_vectors_read_alike_from_npy_parquet_lists_and_wide_tables(iris):
    ds, frame, _, root = iris
    vectors = frame[["sl", "sw", "pl", "pw"]].to_numpy(dtype=np.float32)
    order = np.random.default_rng(0).permutation(ds.n_samples)
    np.save(root / "v.npy", vectors)
    vector_parquet(root / "v.parquet", ds.ids[order], [list(v) for v in vectors[order]])
    wide = pd.DataFrame(vectors[order], columns=["d0", "d1", "d2", "d3"])
    wide.insert(0, "id", ds.ids[order])
    wide.to_csv(root / "v.csv", index=False)
    for name in ("v.npy", "v.parquet", "v.csv"):
        read = read_embeddings(root / name, ds)
        assert read.dtype == np.float32
        np.testing.assert_allclose(read, vectors, rtol=1e-6, err_msg=name)


def test_vector_faults_are_refused_at_their_first_row(iris):
    ds, frame, _, root = iris
    vectors = [[1.0, 2.0, 3.0]] * ds.n_samples
    ragged = [*vectors[:4], [1.0, 2.0], *vectors[5:]]
    vector_parquet(root / "ragged.parquet", ds.ids, ragged)
    assert ("row 5 (id 's004') has a vector of 2 numbers, row 1 of 3"
            in refused(read_embeddings, root / "ragged.parquet", ds))
    nan = [*vectors[:9], [1.0, float("nan"), 3.0], *vectors[10:]]
    vector_parquet(root / "nan.parquet", ds.ids, nan)
    assert "row 10 (id 's009') holds nan (value 2" in refused(
        read_embeddings, root / "nan.parquet", ds)
    vector_parquet(root / "shifted.parquet", [*ds.ids[1:], "s999"], vectors)
    assert "has the id 's999', which is not in the dataset" in refused(
        read_embeddings, root / "shifted.parquet", ds)
    np.save(root / "flat.npy", np.ones(ds.n_samples))
    assert "a 1-D array" in refused(read_embeddings, root / "flat.npy", ds)
    np.save(root / "empty.npy", np.ones((ds.n_samples, 0)))
    assert "vectors of length 0" in refused(read_embeddings, root / "empty.npy", ds)
    pd.DataFrame({"sample_id": ds.ids}).to_csv(root / "ids-only.csv", index=False)
    assert "only the id column" in refused(read_embeddings, root / "ids-only.csv", ds)


# -- scan --pred-probs ---------------------------------------------------------------------------

runner = CliRunner()
FLIPS = (3, 17, 30, 60, 88, 101, 120, 140)  # iris samples given the next class


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def noisy(tmp_path):
    """(the iris table with FLIPS, its out-of-fold probabilities as .npy, a folder)."""
    frame, _ = iris_table(tmp_path / "iris.csv", flips=FLIPS)
    probs = out_of_fold(frame)
    np.save(tmp_path / "probs.npy", probs)
    return frame, probs, tmp_path


def scanned(data, out, *extra):
    """Run a scan that must succeed; return (issues.csv, summary.json, report.html's text)."""
    result = run("scan", data, "--out", out, "--id-column", "sample_id", *extra)
    assert result.exit_code == 0, result.output
    issues = pd.read_csv(out / "issues.csv", dtype=str, keep_default_na=False) \
        if (out / "issues.csv").exists() else None
    return (issues, json.loads((out / "summary.json").read_text()),
            (out / "report.html").read_text(encoding="utf-8"))


def test_the_flipped_samples_rank_at_the_top_and_nothing_trains(noisy):
    frame, _, root = noisy
    result = run("scan", root / "iris.csv", "--out", root / "out", "--id-column", "sample_id",
                 "--pred-probs", root / "probs.npy")
    assert result.exit_code == 0, result.output
    issues = pd.read_csv(root / "out" / "issues.csv", dtype=str, keep_default_na=False)
    flipped = {f"s{i:03d}" for i in FLIPS}
    assert flipped <= set(issues["id"][: len(FLIPS) + 2])
    assert flipped <= set(issues["id"][issues["is_label_issue"] == "True"])
    assert list(issues.columns[6:]) == ["quality_pred_probs", "flagged_by"]
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert summary["audit"]["source"] == "pred_probs" and summary["audit"]["ran"]
    assert summary["audit"]["members"] == ["pred_probs"]
    assert {"features", "monitor", "folds"}.isdisjoint(summary["timings"])
    stages = result.output.split("labelaudit scan")[0]
    assert stages.splitlines()[0].startswith("reading your model's probabilities")
    assert "training" not in stages and "fold" not in stages
    assert "your model's (--pred-probs" in result.output and "labelaudit trained nothing" in \
        result.output


def test_a_shuffled_csv_gives_the_issues_of_the_npy(noisy):
    frame, probs, root = noisy
    probs_table(frame, probs, seed=3).to_csv(root / "probs.csv", index=False)
    from_npy, _, _ = scanned(root / "iris.csv", root / "a", "--pred-probs", root / "probs.npy")
    from_csv, _, _ = scanned(root / "iris.csv", root / "b", "--pred-probs", root / "probs.csv")
    numbers = ["label_quality", "quality_pred_probs"]
    pd.testing.assert_frame_equal(from_npy.drop(columns=numbers), from_csv.drop(columns=numbers))
    np.testing.assert_allclose(from_npy[numbers].astype(float), from_csv[numbers].astype(float),
                               rtol=1e-5)


CLI_FAULTS = {  # how the probabilities are spoiled -> what the message says
    "unknown id": (lambda t: bad_cell(t, 2, "sample_id", "zz9"), "row 3 below the header"),
    "bad sum": (lambda t: bad_cell(t, 8, "virginica", 0.9), "row 9 below the header"),
    "missing class": (lambda t: t.drop(columns=["setosa"]), "no column for the class(es)"),
    "text cell": (lambda t: bad_cell(t, 0, "setosa", "x"), "row 1 below the header"),
}


@pytest.mark.parametrize("fault", CLI_FAULTS)
def test_bad_probabilities_exit_2_and_leave_no_report(noisy, fault):
    frame, probs, root = noisy
    spoil, said = CLI_FAULTS[fault]
    spoil(probs_table(frame, probs)).to_csv(root / "bad.csv", index=False)
    result = run("scan", root / "iris.csv", "--out", root / "out", "--id-column", "sample_id",
                 "--pred-probs", root / "bad.csv")
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not (root / "out" / "report.html").exists()


def test_an_npy_of_the_wrong_shape_exits_2(noisy):
    _, probs, root = noisy
    np.save(root / "short.npy", probs[:-3])
    result = run("scan", root / "iris.csv", "--out", root / "out", "--pred-probs",
                 root / "short.npy")
    assert result.exit_code == 2 and "shape (147, 3)" in result.output
    assert not (root / "out").exists()


def keras_log(path: Path, *, climbing: bool) -> Path:
    """A Keras CSVLogger file (0-based epochs) whose gap climbs steeply, or converges."""
    epochs = np.arange(20)
    train = 1 - 0.04 * epochs if climbing else 1 / (epochs + 1)
    val = 0.8 + 0.01 * epochs if climbing else 1 / (epochs + 1) + 0.1
    pd.DataFrame({"epoch": epochs, "accuracy": 0.5, "loss": train, "val_accuracy": 0.5,
                  "val_loss": val}).to_csv(path, index=False)
    return path


def test_a_climbing_history_gives_the_steep_verdict_with_the_advice_for_your_model(noisy):
    _, _, root = noisy
    log = keras_log(root / "training.log.csv", climbing=True)
    _, summary, report = scanned(root / "iris.csv", root / "out", "--pred-probs",
                                 root / "probs.npy", "--history", log)
    gap_block, audit = summary["gap"], summary["audit"]
    assert gap_block["regime"] == "steep-climb" and gap_block["steep"] is True
    # Advice for your model's climbing gap, pointing at this report rather than at a scan.
    assert gap_block["advice"] == YOUR_LOG_STEEP_ADVICE
    assert gap_block["advice"] not in (gap.ADVICE["steep-climb"], gap.SCAN_ADVICE["steep-climb"])
    assert "your model" in gap_block["advice"] and "report.html" in gap_block["advice"]
    assert audit["ran"] and "your model's training log" in audit["reason"]
    assert "climbs steeply" in audit["reason"]
    history = pd.read_csv(root / "out" / "history.csv")
    assert list(history["epoch"][:2]) == [1, 2] and len(history) == 20
    assert html.escape(YOUR_LOG_STEEP_ADVICE, quote=False) in report
    assert "Read on your model's training log" in report and 'class="plot"' in report


def test_a_converged_history_skips_the_audit_under_auto(noisy):
    _, _, root = noisy
    log = keras_log(root / "log.csv", climbing=False)
    issues, summary, report = scanned(root / "iris.csv", root / "out", "--pred-probs",
                                      root / "probs.npy", "--history", log)
    assert issues is None and not summary["audit"]["ran"]
    assert summary["gap"]["steep"] is False and summary["gap"]["regime"] != "steep-climb"
    assert "does not climb steeply" in summary["audit"]["reason"]
    _, always, _ = scanned(root / "iris.csv", root / "always", "--pred-probs",
                           root / "probs.npy", "--history", log, "--audit", "always")
    assert always["audit"]["ran"] and always["gap"]["regime"] == summary["gap"]["regime"]


def test_without_a_history_the_audit_runs_and_the_verdict_says_no_curves(noisy):
    _, _, root = noisy
    result = run("scan", root / "iris.csv", "--out", root / "out", "--id-column", "sample_id",
                 "--pred-probs", root / "probs.npy")
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert summary["gap"]["regime"] == "no-curves" and summary["gap"]["steep"] is False
    assert summary["audit"]["ran"] and "without --history" in summary["audit"]["reason"]
    assert "no-curves" in result.output
    report = (root / "out" / "report.html").read_text(encoding="utf-8")
    assert "No loss curves" in report and 'class="plot"' not in report
    assert "your model&#39;s (--pred-probs" in report
    assert pd.read_csv(root / "out" / "history.csv").empty
    _, never, _ = scanned(root / "iris.csv", root / "never", "--pred-probs", root / "probs.npy",
                          "--audit", "never")
    assert not never["audit"]["ran"] and not (root / "never" / "issues.csv").exists()


@pytest.mark.parametrize("extra, said", [
    (["--history", "LOG"], "--history is your model's training log"),
    (["--pred-probs", "PROBS", "--embeddings", "PROBS"], "--pred-probs and --embeddings cannot"),
    (["--pred-probs", "PROBS", "--encoder", "some/model"], "--pred-probs and --encoder cannot"),
    (["--pred-probs", "PROBS", "--history", "NOLOG"], "no such file or folder"),
    (["--pred-probs", "PROBS", "--history", "PROBS"], "unknown log format"),
])
def test_what_cannot_go_together_is_refused(noisy, extra, said):
    _, _, root = noisy
    keras_log(root / "log.csv", climbing=True)
    named = {"LOG": root / "log.csv", "PROBS": root / "probs.npy", "NOLOG": root / "none.csv"}
    result = run("scan", root / "iris.csv", "--out", root / "out",
                 *[named.get(a, a) for a in extra])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())
    assert not (root / "out").exists()


def test_scan_decide_apply_with_your_probabilities(noisy):
    frame, _, root = noisy
    issues, _, _ = scanned(root / "iris.csv", root / "out", "--pred-probs", root / "probs.npy")
    flagged = issues[issues["is_label_issue"] == "True"]
    decisions = pd.DataFrame({"id": flagged["id"], "given_label": flagged["given_label"],
                              "decision": "relabel", "new_label": flagged["suggested_label"]})
    decisions.to_csv(root / "decisions.csv", index=False)
    result = run("apply", root / "iris.csv", root / "decisions.csv", "--out", root / "fixed.csv",
                 "--id-column", "sample_id")
    assert result.exit_code == 0, result.output
    fixed = pd.read_csv(root / "fixed.csv")
    _, truth = iris_table(root / "clean.csv")
    repaired = fixed["label"].to_numpy() == np.array(CLASSES)[truth]
    assert repaired[list(FLIPS)].all()
    assert (fixed["label"] != frame["label"]).sum() == len(flagged)


def test_the_result_cache_follows_the_content_of_the_probabilities(noisy):
    frame, probs, root = noisy
    table = probs_table(frame, probs)
    table.to_csv(root / "p.csv", index=False)
    first, _, _ = scanned(root / "iris.csv", root / "out", "--pred-probs", root / "p.csv")
    again = run("scan", root / "iris.csv", "--out", root / "out", "--id-column", "sample_id",
                "--pred-probs", root / "p.csv")
    assert "reusing the result of an earlier scan" in again.output
    # The same file name, other content: the first sample now looks like a label error.
    table.loc[0, list(CLASSES)] = [0.0, 0.0, 1.0]
    table.to_csv(root / "p.csv", index=False)
    second, _, _ = scanned(root / "iris.csv", root / "out", "--pred-probs", root / "p.csv")
    assert first["id"].iloc[0] != "s000" and second["id"].iloc[0] == "s000"


def test_cache_keys_change_with_each_file_of_yours(tmp_path):
    from labelaudit.cache import result_key
    from labelaudit.scan import ScanSettings

    keys = []
    for name in ("pred_probs", "history", "embeddings"):
        file = tmp_path / f"{name}.csv"
        file.write_text("one")
        before = result_key("0" * 64, ScanSettings(**{name: str(file)}))
        file.write_text("two")
        keys += [before, result_key("0" * 64, ScanSettings(**{name: str(file)}))]
    assert len(set(keys)) == len(keys)
    folder = tmp_path / "run"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "events.out.tfevents.1").write_bytes(b"a")
    before = result_key("0" * 64, ScanSettings(history=str(folder)))
    (folder / "sub" / "events.out.tfevents.2").write_bytes(b"b")
    assert result_key("0" * 64, ScanSettings(history=str(folder))) != before


def test_images_and_texts_explain_flags_without_features(tmp_path):
    root = tmp_path / "digits"
    truth = write_digit_folder(root, n_per_class=12, noise_rate=0.2, seed=1)
    ds = load_dataset(root)
    # A stand-in for the user's model: confident in the true class of every image.
    true = {row.id: ds.classes.index(row.true_label) for row in truth.itertuples()}
    probs = np.full((ds.n_samples, 3), 0.05)
    probs[np.arange(ds.n_samples), [true[i] for i in ds.ids]] = 0.9
    table = pd.DataFrame(probs, columns=list(ds.classes))
    table.insert(0, "id", list(ds.ids))
    table.iloc[::-1].to_csv(tmp_path / "probs.csv", index=False)
    result = run("scan", root, "--out", tmp_path / "out", "--pred-probs", tmp_path / "probs.csv")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    review = json.loads(report.split('id="review-data">')[1].split("</script>")[0])
    wrong = set(truth["id"][truth["true_label"] != truth["given_label"]])
    assert {r["id"] for r in review["rows"]} == wrong
    assert all(r["neighbours"] and r["top"] for r in review["rows"])
    assert review["member_words"]["pred_probs"] == "your model"

    texts = make_text_table(n_per_class=15)
    texts.to_csv(tmp_path / "posts.csv", index=False)
    ds = load_dataset(tmp_path / "posts.csv", label_column="topic")
    probs = np.full((ds.n_samples, ds.n_classes), 0.1)
    probs[np.arange(ds.n_samples), (ds.labels + (np.arange(ds.n_samples) == 0)) % 3] = 0.8
    np.save(tmp_path / "posts.npy", probs)
    result = run("scan", tmp_path / "posts.csv", "--out", tmp_path / "text",
                 "--label-column", "topic", "--pred-probs", tmp_path / "posts.npy")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "text" / "report.html").read_text(encoding="utf-8")
    review = json.loads(report.split('id="review-data">')[1].split("</script>")[0])
    assert [r["id"] for r in review["rows"]] == [str(ds.ids[0])]
    # The text is of its given topic (only the probabilities doubt it): its words say so.
    assert review["rows"][0]["words"][0] and not review["rows"][0]["words"][1]
