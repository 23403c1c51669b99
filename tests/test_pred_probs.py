"""A model of the user's own: --pred-probs and --history in a scan, and the readers of the
probabilities and vectors they bring (labelaudit.inputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelaudit.data import load_dataset
from labelaudit.errors import UsageError
from labelaudit.inputs import read_embeddings, read_pred_probs

from .conftest import write_digit_folder

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
    path = root / f"shuffled{suffix}"
    if suffix == ".parquet":
        table.to_parquet(path, index=False)
    elif suffix == ".jsonl":
        table.to_json(path, orient="records", lines=True)
    else:
        table.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
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
