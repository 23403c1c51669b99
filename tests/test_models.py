"""The torch models' training rules: early stopping, the monitor's stopping rule, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris

from labelaudit.backends import PARALLEL_FROM, auto_jobs
from labelaudit.models import TorchClassifier
from labelaudit.scan import ScanSettings, scan


def _iris():
    X, y = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)[order]
    return X[:100], y[order][:100], X[100:], y[order][100:]


@pytest.mark.parametrize("patience, min_epochs", [(2, 0), (2, 12), (4, 6)])
def test_early_stopping_waits_patience_epochs_past_the_best_and_min_epochs(patience, min_epochs):
    X, y, X_val, y_val = _iris()
    # A high learning rate makes the validation loss bottom out early and then rise.
    clf = TorchClassifier(kind="features", epochs=40, lr=0.05, batch_size=16, patience=patience,
                          min_epochs=min_epochs).fit(X, y, X_val=X_val, y_val=y_val)
    val = [h["val_loss"] for h in clf.history_]
    stopped = len(val)
    assert stopped < 40, "validation loss never stopped improving; the test needs a harder case"
    assert stopped >= min_epochs
    best = int(np.argmin(val)) + 1
    assert clf.best_epoch_ == best
    assert stopped - best >= patience
    # It stopped at the first epoch the rule allowed, not later.
    running_best = [int(np.argmin(val[:e])) + 1 for e in range(1, stopped + 1)]
    allowed = [e for e in range(1, stopped + 1)
               if e >= min_epochs and e - running_best[e - 1] >= patience]
    assert allowed[0] == stopped


def test_shift_translates_whole_images_and_keeps_edges():
    import torch

    clf = TorchClassifier(kind="images", shift=2)
    batch = torch.arange(3 * 1 * 6 * 6, dtype=torch.float32).reshape(3, 1, 6, 6)
    shifted = clf._shifted(batch, torch.Generator().manual_seed(0))
    assert shifted.shape == batch.shape
    padded = torch.nn.functional.pad(batch, (2, 2, 2, 2), mode="replicate")
    for i in range(3):  # each image is one window of its padded self
        windows = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(padded[i, :, dy:dy + 6, dx:dx + 6], shifted[i])]
        assert windows, f"image {i} is not a translation of the input"
    again = clf._shifted(batch, torch.Generator().manual_seed(0))
    assert torch.equal(shifted, again)  # seeded: the same shifts every run


def test_shifted_proba_averages_the_image_and_its_four_one_pixel_shifts():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(40, 1, 12, 12), dtype=np.uint8)
    y = np.arange(40) % 2
    clf = TorchClassifier(kind="images", epochs=2, shift=1).fit(X, y)
    padded = np.pad(X, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    views = [padded[:, :, 1 + dy:13 + dy, 1 + dx:13 + dx]
             for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))]
    expected = np.mean([clf.predict_proba(np.ascontiguousarray(v)) for v in views], axis=0)
    got = clf.shifted_proba(X)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, clf.predict_proba(X), atol=1e-4)  # the shifts count
    np.testing.assert_allclose(clf.shifted_proba(X, np.arange(5, 9)), expected[5:9], atol=1e-6)


def test_held_out_probabilities_of_shifted_images_average_the_shifts():
    from labelaudit.settings import ScanSettings
    from labelaudit.train import ModelSettings, train_fold

    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(60, 1, 20, 20), dtype=np.uint8)
    y = np.arange(60) % 3
    train, test = np.arange(45), np.arange(45, 60)
    for shift in (0, 2):
        settings = ModelSettings.of(ScanSettings(epochs=2), kind="images", n_classes=3,
                                    shift=shift)
        result = train_fold(X, y, train, test, fold=1, settings=settings, monitor=False)
        model = TorchClassifier(kind="images", n_classes=3, epochs=2, shift=shift,
                                batch_size=settings.batch_size, lr=settings.lr,
                                hidden=settings.hidden, patience=settings.patience,
                                device=settings.device, random_state=1)
        model.fit(X[train], y[train], X_val=X[test], y_val=y[test])
        want = model.shifted_proba(X[test]) if shift else model.val_pred_probs_
        np.testing.assert_allclose(result.pred_probs, want, atol=1e-6)


def test_scan_shifts_only_images_larger_than_16_pixels(tmp_path):
    from labelaudit.data import Dataset
    from labelaudit.scan import image_shift

    def ds(kind, shape):
        return Dataset(path="x", kind=kind, ids=np.array(["0"]), labels=np.array([0]),
                       classes=("a",), inputs=np.zeros(shape, dtype=np.uint8))

    assert image_shift(ds("images", (1, 1, 8, 8))) == 0
    assert image_shift(ds("images", (1, 3, 28, 28))) == 2
    assert image_shift(ds("tabular", (1, 28))) == 0


def test_reproducible_turns_deterministic_kernels_on_for_cuda_only_and_restores_them():
    import torch

    from labelaudit.models import reproducible

    cudnn = torch.backends.cudnn
    before = (torch.are_deterministic_algorithms_enabled(), cudnn.deterministic, cudnn.benchmark)
    with reproducible("cpu"):
        assert (torch.are_deterministic_algorithms_enabled(), cudnn.deterministic,
                cudnn.benchmark) == before
    with reproducible("cuda:0"):  # only switches: no GPU is touched
        assert torch.are_deterministic_algorithms_enabled() and cudnn.deterministic
        assert not cudnn.benchmark
    assert (torch.are_deterministic_algorithms_enabled(), cudnn.deterministic,
            cudnn.benchmark) == before


@pytest.mark.parametrize("size", [8, 10, 28])
def test_the_same_seed_trains_the_same_network_on_a_gpu(size):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (run on a GPU machine)")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (300, 1, size, size), dtype=np.uint8)
    y = rng.integers(0, 3, 300)
    runs = [TorchClassifier(kind="images", epochs=3, device="cuda", shift=2 if size > 16 else 0)
            .fit(X[:200], y[:200], X_val=X[200:], y_val=y[200:]) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].val_pred_probs_, runs[1].val_pred_probs_)
    assert runs[0].history_ == runs[1].history_


def test_monitor_watches_past_its_best_epoch(table_csv):
    result = scan(table_csv, ScanSettings(cv=3, audit="never", epochs=30))
    monitor = result.history[result.history["fold"] == 1]
    epochs = len(monitor)
    best = int(monitor["val_loss"].to_numpy().argmin()) + 1
    assert epochs >= 15
    assert epochs == 30 or epochs - best >= 8
    # None trains every epoch, the curve the gap rule was first calibrated on.
    whole = scan(table_csv, ScanSettings(cv=3, audit="never", epochs=30, monitor_patience=None))
    assert len(whole.history) == 30


def test_folds_run_in_parallel_only_where_it_pays():
    from joblib import cpu_count

    assert auto_jobs(PARALLEL_FROM - 1) == 1
    assert auto_jobs(PARALLEL_FROM) == cpu_count()


def test_transform_returns_the_penultimate_layer():
    X, y, X_val, _ = _iris()
    clf = TorchClassifier(kind="features", epochs=3, hidden=16).fit(X, y)
    features = clf.transform(X_val)
    assert features.shape == (len(X_val), 16) and (features >= 0).all()  # after the ReLU
    import torch

    with torch.no_grad():
        logits = clf.network_[-1](torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True),
                               clf.predict_proba(X_val), atol=1e-5)


def test_learned_space_neighbours_join_images_and_tables_not_text(table_csv, text_csv):
    table = scan(table_csv, ScanSettings(cv=3, epochs=4, audit="always"))
    assert list(table.member_probs) == ["mlp", "knn", "logreg", "knn_embedding"]
    assert "quality_knn_embedding" in table.issues.columns
    assert list(table.audit["member_weights"]) == ["mlp", "knn", "logreg", "knn_embedding",
                                                   "dynamics"]
    text = scan(text_csv, ScanSettings(cv=3, epochs=4, audit="always", label_column="topic"))
    assert list(text.member_probs) == ["knn", "logreg", "naive_bayes"]
    assert text.dynamics is None and "quality_dynamics" not in text.issues.columns


def test_on_text_naive_bayes_replaces_the_network_in_the_audit(text_csv):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from labelaudit.audit import RANK_BY, member_weights, pool_probs, rank_weights

    result = scan(text_csv, ScanSettings(cv=3, epochs=4, audit="always", label_column="topic"))
    assert result.audit["members"] == list(result.audit["member_weights"]) == \
        ["knn", "logreg", "naive_bayes"]
    assert [c for c in result.issues.columns if c.startswith("quality_")] == \
        ["quality_knn", "quality_logreg", "quality_naive_bayes"]
    # The network still trained every fold: its curves diagnose the gap.
    assert sorted(result.history["fold"].unique()) == [1, 2, 3]
    y = result.dataset.labels
    members = list(result.member_probs.values())
    pooled = pool_probs(members, member_weights(y, members))
    np.testing.assert_allclose(result.pred_probs, pooled, atol=1e-6)
    issues = result.issues.set_index("id").loc[list(result.dataset.ids)]
    ranked = pool_probs(members, rank_weights(y, members))  # the ranking's weights: 1 / error
    np.testing.assert_allclose(issues["label_quality"],
                               get_label_quality_scores(y, ranked, method=RANK_BY), atol=1e-6)
    votes = np.sum([find_label_issues(y, p) for p in members], axis=0)
    assert issues["is_label_issue"].astype(bool).tolist() == (votes >= 2).tolist()


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_every_fold_has_the_same_members_at_the_neighbour_size_limit(table_csv, monkeypatch,
                                                                      offset):
    """The kNN members depend on the dataset's size, not each fold's, so no fold lacks one.

    151 rows in 5 folds train on 120 or 121 rows; a per-fold rule at 120 would give fold 1
    neighbours and the others none.
    """
    import pandas as pd

    from labelaudit import train

    frame = pd.read_csv(table_csv)
    pd.concat([frame, frame.iloc[:1]]).to_csv(table_csv, index=False)  # 151 rows
    monkeypatch.setattr(train, "MAX_KNN_SAMPLES", 151 + offset)
    result = scan(table_csv, ScanSettings(cv=5, epochs=3, audit="always"))
    expected = ["mlp", "knn", "logreg", "knn_embedding"] if offset >= 0 else ["mlp", "logreg"]
    assert list(result.member_probs) == expected
    assert not np.isnan(result.pred_probs).any()


def test_trajectory_averages_the_training_passes_and_wrong_labels_hold_less():
    X, y = load_iris(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype("float32")
    wrong = np.arange(0, 150, 15)  # ten samples, relabelled to the next class
    noisy = y.copy()
    noisy[wrong] = (y[wrong] + 1) % 3
    clf = TorchClassifier(kind="features", epochs=20, random_state=0)
    assert clf.fit(X, noisy).trajectory_ is None
    clf.fit(X, noisy, trajectory=True)
    assert clf.trajectory_.shape == (150, 3) and clf.trajectory_.dtype == np.float32
    np.testing.assert_allclose(clf.trajectory_.sum(1), 1, atol=1e-5)
    given = clf.trajectory_[np.arange(150), noisy]
    right = np.setdiff1d(np.arange(150), wrong)
    assert given[wrong].max() < np.median(given[right])


def test_training_dynamics_average_over_the_folds_a_sample_trained_in():
    from labelaudit.train import FoldResult, training_dynamics

    def fold(k, train, probs):
        return FoldResult(fold=k, test_index=np.array([]), pred_probs=None, history=[],
                          best_epoch=1, train_index=np.array(train),
                          trajectory=np.array(probs, dtype=np.float32))

    folds = [fold(1, [1, 2], [[.2, .8], [.6, .4]]), fold(2, [0, 2], [[1, 0], [.2, .8]]),
             fold(3, [0, 1], [[.5, .5], [.4, .6]])]
    np.testing.assert_allclose(training_dynamics(folds, 3, 2),
                               [[.75, .25], [.3, .7], [.4, .6]], atol=1e-6)
    with pytest.raises(RuntimeError, match="never trained on"):
        training_dynamics(folds[:1], 3, 2)
    assert training_dynamics([FoldResult(fold=1, test_index=np.array([0]), pred_probs=None,
                                         history=[], best_epoch=1)], 1, 2) is None


def test_the_ranking_pools_the_members_and_the_training_dynamics(table_csv):
    from cleanlab.rank import get_label_quality_scores

    from labelaudit.audit import RANK_BY, pool_probs, rank_weights

    result = scan(table_csv, ScanSettings(cv=3, epochs=6, audit="always"))
    y = result.dataset.labels  # indices into classes
    ranking = [*result.member_probs.values(), result.dynamics]
    ranked = pool_probs(ranking, rank_weights(y, ranking))
    issues = result.issues.set_index("id").loc[list(result.dataset.ids)]
    np.testing.assert_allclose(issues["label_quality"],
                               get_label_quality_scores(y, ranked, method=RANK_BY), atol=1e-6)
    np.testing.assert_allclose(issues["quality_dynamics"],
                               get_label_quality_scores(y, result.dynamics, method=RANK_BY),
                               atol=1e-6)
    # The suggested label is the out-of-fold pool's, without the in-sample dynamics.
    classes = np.array(result.dataset.classes, dtype=object)
    assert list(issues["suggested_label"]) == list(classes[result.pred_probs.argmax(1)])
    assert "dynamics" not in ";".join(issues["flagged_by"].fillna(""))
