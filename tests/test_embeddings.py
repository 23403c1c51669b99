"""--embeddings: members that learn from the user's vectors join the ensemble as far as their
out-of-fold accuracy supports; useless vectors change nothing; folds and members are reused.

The good vectors here are an oracle: each sample's TRUE class centre plus noise, what a
representation trained on clean labels elsewhere would give. The useless ones are noise.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit.audit import JOIN_MARGIN, STEP_OUT_MARGIN, gate_members
from labelaudit.cli import app
from labelaudit.scan import ScanSettings, scan

from .conftest import make_table, make_text_table, write_digit_folder

runner = CliRunner()
FAST = ScanSettings(epochs=6, cv=3, audit="always")


def oracle_vectors(true_labels, *, dims: int = 16, spread: float = 0.6, seed: int = 0):
    """Each sample's true class centre (a random unit vector per class) plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(int(np.max(true_labels)) + 1, dims))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.normal(scale=spread / np.sqrt(dims), size=(len(true_labels), dims))
    return (centres[true_labels] + noise).astype(np.float32)


def noise_vectors(n: int, *, dims: int = 16, seed: int = 1):
    return np.random.default_rng(seed).normal(size=(n, dims)).astype(np.float32)


@pytest.fixture
def weak_table(tmp_path):
    """(csv, is_flipped, true labels): a table whose columns barely tell the classes apart,
    15% of its labels flipped."""
    from sklearn.datasets import make_classification

    from labelaudit.noise import inject_noise

    X, y = make_classification(n_samples=180, n_features=6, n_informative=3, n_redundant=0,
                               n_classes=3, n_clusters_per_class=1, class_sep=0.7,
                               random_state=3)
    given = inject_noise(y, 0.15, random_state=3)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    frame["label"] = np.array(["a", "b", "c"])[given]
    path = tmp_path / "weak.csv"
    frame.to_csv(path, index=False)
    return path, given != y, y


def recall(result, flipped) -> float:
    ids = result.issues["id"].astype(int).to_numpy()
    flagged = np.zeros(len(flipped), bool)
    flagged[ids] = result.issues["is_label_issue"].to_numpy(bool)
    return float(flagged[flipped].mean())


def test_oracle_vectors_vote_rank_and_beat_the_weak_columns(tmp_path, weak_table):
    path, flipped, true = weak_table
    np.save(tmp_path / "oracle.npy", oracle_vectors(true))
    default = scan(path, FAST)
    result = scan(path, replace(FAST, embeddings=str(tmp_path / "oracle.npy")))
    audit = result.audit
    assert {"embeddings_knn", "embeddings_logreg"} <= set(audit["members"])
    best_own = max(v for k, v in audit["member_accuracy"].items() if not k.startswith("emb"))
    assert audit["member_accuracy"]["embeddings_logreg"] > best_own + STEP_OUT_MARGIN
    # The weak members step out, and the training dynamics with the network.
    assert audit["left_out"] and not set(audit["left_out"]) & set(audit["members"])
    if "mlp" in audit["left_out"]:
        assert audit["left_out"]["dynamics"] == "follows mlp, which stepped out"
    assert "quality_embeddings_logreg" in result.issues.columns
    flagged_by = result.issues.loc[result.issues["is_label_issue"], "flagged_by"]
    assert flagged_by.str.contains("embeddings_").mean() > 0.5
    assert recall(result, flipped) >= recall(default, flipped) + 0.2
    assert recall(result, flipped) >= 0.8


def test_useless_vectors_are_left_out_and_the_scan_is_as_without_them(tmp_path, table_csv):
    np.save(tmp_path / "noise.npy", noise_vectors(150))
    default = scan(table_csv, FAST)
    result = scan(table_csv, replace(FAST, embeddings=str(tmp_path / "noise.npy")))
    assert set(result.audit["left_out"]) == {"embeddings_knn", "embeddings_logreg"}
    assert result.audit["gate"].endswith("left out (more than 0.02 below), the ensemble is as "
                                         "without them")
    assert result.audit["members"] == default.audit["members"]
    # The terminal and the report say so where they say whose probabilities these are.
    from labelaudit.report import probabilities_source

    assert probabilities_source(result.summary()).endswith("; " + result.audit["gate"])
    pd.testing.assert_frame_equal(result.issues, default.issues)
    np.testing.assert_array_equal(result.pred_probs, default.pred_probs)


def test_text_and_images_take_vectors_too_parquet_keyed_by_id_in_any_order(tmp_path):
    from labelaudit.noise import inject_noise

    posts = make_text_table(n_per_class=30)
    true = posts["topic"].astype("category").cat.codes.to_numpy()
    given = inject_noise(true, 0.15, random_state=0)
    posts["topic"] = np.array(sorted(set(posts["topic"])))[given]
    posts.insert(0, "post_id", [f"p{i:03d}" for i in range(len(posts))])
    posts.to_csv(tmp_path / "posts.csv", index=False)
    truth = write_digit_folder(tmp_path / "digits", noise_rate=0.15)
    digit_true = truth["true_label"].astype(int).map({0: 0, 1: 1, 7: 2}).to_numpy()
    order = np.random.default_rng(0).permutation
    for name, ids, labels in (("posts", posts["post_id"], true),
                              ("digits", truth["id"], digit_true)):
        rows = order(len(ids))  # the file's rows in another order than the dataset's
        pd.DataFrame({"id": np.asarray(ids)[rows],
                      "vector": list(oracle_vectors(labels)[rows])}).to_parquet(
            tmp_path / f"{name}.parquet")
    for data, vectors, network in ((tmp_path / "posts.csv", "posts", "mlp"),
                                   (tmp_path / "digits", "digits", "cnn")):
        out = tmp_path / f"out-{vectors}"
        result = runner.invoke(app, [
            "scan", str(data), "--embeddings", str(tmp_path / f"{vectors}.parquet"), "--out",
            str(out), "--audit", "always", "--cv", "3", "--epochs", "4", "--json",
            *(["--label-column", "topic"] if vectors == "posts" else [])])
        assert result.exit_code == 0, result.output
        audit = json.loads(result.stdout)["audit"]
        assert audit["member_accuracy"]["embeddings_logreg"] > 0.8, audit["gate"]
        assert "embeddings_logreg" in audit["members"]
        assert "a linear model on the embeddings" in (out / "report.html").read_text()
        assert network in audit["member_accuracy"] or vectors == "posts"  # text: mlp only runs


def test_npy_and_parquet_give_the_same_scan(tmp_path, table_csv):
    _, true = make_table()
    vectors = oracle_vectors(true)
    np.save(tmp_path / "v.npy", vectors)
    rows = np.random.default_rng(0).permutation(len(true))
    pd.DataFrame({"id": rows.astype(str), "vector": list(vectors[rows])}).to_parquet(
        tmp_path / "v.parquet")
    settings = replace(FAST, id_column="")
    from_npy = scan(table_csv, replace(settings, embeddings=str(tmp_path / "v.npy")))
    from_parquet = scan(table_csv, replace(settings, embeddings=str(tmp_path / "v.parquet")))
    assert from_npy.audit["member_accuracy"] == from_parquet.audit["member_accuracy"]
    pd.testing.assert_frame_equal(from_npy.issues, from_parquet.issues)


def test_the_cache_reuses_folds_and_members_and_fits_only_what_new_vectors_need(
        tmp_path, table_csv, monkeypatch):
    from labelaudit import train

    _, true = make_table()
    np.save(tmp_path / "a.npy", oracle_vectors(true, seed=0))
    np.save(tmp_path / "b.npy", oracle_vectors(true, seed=5))
    cache = tmp_path / "cache"
    settings = replace(FAST, embeddings=str(tmp_path / "a.npy"), cache_dir=str(cache))
    first = scan(table_csv, settings)
    entries = sorted(p.name for p in cache.glob("*/*.joblib") if p.parent.name != "results")
    assert [e for e in entries if "-embeddings-" in e] and len(entries) == 9

    fitted = []
    real_train_fold, real_fit_members = train.train_fold, train.fit_members
    monkeypatch.setattr(train, "train_fold", lambda *a, **k: fitted.append(
        ("network", k["fold"])) or real_train_fold(*a, **k))
    monkeypatch.setattr(train, "fit_members", lambda *a, **k: fitted.append(
        ("raw" if k["raw"] else "vectors", k["embeddings"] is not None)) or
        real_fit_members(*a, **k))
    again = scan(table_csv, replace(settings, filter_by="both"))
    assert fitted == []
    assert again.audit["member_accuracy"] == first.audit["member_accuracy"]
    # Other vectors: only their members fit; the networks and the other members are reused.
    other = scan(table_csv, replace(settings, embeddings=str(tmp_path / "b.npy")))
    assert fitted == [("vectors", True)] * 3
    assert other.audit["member_accuracy"]["mlp"] == first.audit["member_accuracy"]["mlp"]


@pytest.mark.parametrize("backend", ["joblib", "dask"])
def test_parallel_backends_fit_the_embedding_members_as_serial(tmp_path, table_csv, backend):
    _, true = make_table()
    np.save(tmp_path / "v.npy", oracle_vectors(true))
    settings = replace(FAST, embeddings=str(tmp_path / "v.npy"))
    serial = scan(table_csv, settings)
    if backend == "joblib":
        other = scan(table_csv, replace(settings, n_jobs=2))
    else:
        distributed = pytest.importorskip("distributed")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None, silence_logs=40) as cluster:
            other = scan(table_csv, replace(settings, backend="dask",
                                            scheduler=cluster.scheduler_address))
    for name in ("embeddings_knn", "embeddings_logreg"):
        assert other.audit["member_accuracy"][name] == serial.audit["member_accuracy"][name]
    pd.testing.assert_frame_equal(serial.issues[["id", "is_label_issue", "flagged_by"]],
                                  other.issues[["id", "is_label_issue", "flagged_by"]])


def test_embeddings_and_encoder_together_are_refused(tmp_path, table_csv):
    np.save(tmp_path / "v.npy", noise_vectors(150))
    result = runner.invoke(app, ["scan", str(table_csv), "--embeddings", str(tmp_path / "v.npy"),
                                 "--encoder", "all-MiniLM-L6-v2", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "--embeddings and --encoder both give the vectors" in " ".join(result.output.split())


# -- the gate alone ---------------------------------------------------------------------------


def probs_with_accuracy(labels, accuracy: float, *, k: int = 2, seed: int = 0):
    """One-hot probabilities right on the first round(accuracy * n) samples."""
    n = len(labels)
    right = np.arange(n) < round(accuracy * n)
    predicted = np.where(right, labels, (labels + 1) % k)
    return np.eye(k)[predicted]


def gate(accuracies: dict, *, embedded=("vectors",), follows=None):
    labels = np.tile([0, 1], 50)
    members = {name: probs_with_accuracy(labels, a) for name, a in accuracies.items()}
    return gate_members(labels, members, embedded=list(embedded), follows=follows)


def test_the_members_on_vectors_join_together_within_the_margin_and_not_beyond():
    assert JOIN_MARGIN == 0.02
    pair = ("vectors", "weak")
    joined = gate({"mlp": 0.90, "logreg": 0.92, "vectors": 0.91, "weak": 0.5}, embedded=pair)
    assert joined.left_out == {}  # the weak one joins with the better one
    assert joined.note.endswith("logreg, 0.920: vectors, weak vote and rank")
    left = gate({"mlp": 0.90, "logreg": 0.92, "vectors": 0.89, "weak": 0.5}, embedded=pair)
    assert left.left_out == {
        "vectors": "out-of-fold accuracy 0.890; the better on the vectors, vectors, is more "
                   "than 0.02 below logreg's 0.920",
        "weak": "out-of-fold accuracy 0.500; the better on the vectors, vectors, is more than "
                "0.02 below logreg's 0.920"}


def test_own_members_step_out_only_beyond_the_margin_below_a_member_that_joined():
    assert STEP_OUT_MARGIN == 0.05
    decided = gate({"mlp": 0.91, "knn": 0.80, "vectors": 0.95}, follows={"dynamics": "knn"})
    assert decided.left_out == {"knn": "out-of-fold accuracy 0.800, more than 0.05 below "
                                       "vectors's 0.950"}  # dynamics is not a member here
    assert decided.accuracy == {"mlp": 0.91, "knn": 0.8, "vectors": 0.95}
    labels = np.tile([0, 1], 50)
    members = {"cnn": probs_with_accuracy(labels, 0.8), "logreg": probs_with_accuracy(labels, .93),
               "dynamics": probs_with_accuracy(labels, 1.0),
               "vectors": probs_with_accuracy(labels, 0.97)}
    decided = gate_members(labels, members, embedded=["vectors"], follows={"dynamics": "cnn"})
    assert list(decided.left_out) == ["cnn", "dynamics"]
    assert "dynamics" not in decided.accuracy  # in-sample: judged with its network
    assert decided.note.endswith("vectors vote and rank; cnn, dynamics step out")
