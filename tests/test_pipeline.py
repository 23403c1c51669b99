"""The scan's steps and the ensemble registry they read (train.ENSEMBLE)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from labelaudit import train
from labelaudit.audit import audit_ensemble, find_issues
from labelaudit.scan import _decide
from labelaudit.train import ENSEMBLE, RANK, RUN, VOTE, members_with, network_of


@pytest.mark.parametrize("kind", sorted(ENSEMBLE))
def test_every_member_runs_and_every_voter_ranks(kind):
    roles = ENSEMBLE[kind]
    assert all(RUN in r for r in roles.values())
    assert set(members_with(VOTE, kind, 100)) <= set(members_with(RANK, kind, 100))
    assert network_of(kind) in roles


def test_the_per_kind_policy():
    assert network_of("images") == "cnn" and network_of("tabular") == "mlp"
    # Text: the network only trains (its curves diagnose the gap); naive Bayes votes instead.
    assert members_with(VOTE, "text", 100) == ["knn", "logreg", "naive_bayes"]
    assert "mlp" not in members_with(RANK, "text", 100)
    # The training dynamics rank and never vote.
    for kind in ("images", "tabular"):
        assert "dynamics" in members_with(RANK, kind, 100)
        assert "dynamics" not in members_with(VOTE, kind, 100)


def test_neighbour_members_stop_at_the_size_limit(monkeypatch):
    monkeypatch.setattr(train, "MAX_KNN_SAMPLES", 100)
    assert members_with(RUN, "tabular", 100) == ["mlp", "knn", "logreg", "knn_embedding",
                                                 "dynamics"]
    assert members_with(RUN, "tabular", 101) == ["mlp", "logreg", "dynamics"]
    assert sorted(train.sklearn_members("text", 50, n_samples=101)) == ["logreg", "naive_bayes"]


def test_the_decision_and_its_reason():
    steep = SimpleNamespace(steep=True, steep_by="gap", growth=0.5, regime="steep-climb")
    flat = SimpleNamespace(steep=False, growth=0.0, regime="converged")
    assert _decide("always", None, 1) == (True, "--audit always")
    assert _decide("never", steep, 1)[0] is False
    ran, reason = _decide("auto", steep, 0)
    assert ran and reason.startswith("on the monitor fold (fold 0) the generalization gap "
                                     "climbs steeply (growth +0.50")
    ran, reason = _decide("auto", flat, 1)
    assert not ran and "(regime: converged)" in reason and "--audit always" in reason


def test_an_ensemble_of_voters_alone_ranks_as_find_issues_on_their_inverse_error_pool():
    from labelaudit.audit import pool_probs, rank_weights

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    members = {name: rng.dirichlet(np.ones(3), 60) for name in ("a", "b")}
    issues, estimates, pred_probs = audit_ensemble(labels, members, votes=["a", "b"],
                                                   ranks=["a", "b"])
    probs = list(members.values())
    alone, _ = find_issues(labels, pred_probs, members=members,
                           rank_probs=pool_probs(probs, rank_weights(labels, probs)))
    np.testing.assert_array_equal(issues["label_quality"], alone["label_quality"])
    assert estimates["estimated_noise_rate"] == estimates["flagged_rate"] == \
        issues["is_label_issue"].mean()
    assert list(estimates["member_weights"]) == estimates["members"] == ["a", "b"]


def _duplicates(n_copies: int = 40, wrong_every: int = 5):
    """Three points, each repeated; every `wrong_every`-th copy mislabeled; rows sorted by
    label, as an image folder's ids sort by class folder. Returns (X, given, true)."""
    true = np.repeat(np.arange(3), n_copies)
    given = true.copy()
    given[::wrong_every] = (true[::wrong_every] + 1) % 3
    order = np.argsort(given, kind="stable")
    X = np.eye(3, dtype=np.float32)[true]
    return X[order], given[order], true[order]


def test_neighbours_of_exact_duplicates_are_a_fair_sample_of_their_copies():
    X, given, true = _duplicates()
    folds = train.fold_splits(given, cv=5, random_state=0)
    for train_index, test_index in folds:
        probs = train.fit_members(X, given, train_index, test_index, data_kind="tabular",
                                  n_classes=3)["knn"]
        # The copies' labels are 80% right, so a fair sample of them votes for the true class.
        assert (probs.argmax(1) == true[test_index]).mean() > 0.95


def test_a_folder_of_duplicated_images_flags_exactly_its_wrong_files(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    from labelaudit.scan import scan
    from labelaudit.settings import ScanSettings

    digits = load_digits()
    rng = np.random.default_rng(0)
    wrong = set()
    for digit in range(6):
        pixels = (digits.images[list(digits.target).index(digit)] * 255 / 16).astype(np.uint8)
        for copy in range(50):
            folder = digit if rng.random() > 0.2 else (digit + 1 + rng.integers(5)) % 6
            (tmp_path / str(folder)).mkdir(exist_ok=True)
            Image.fromarray(pixels).save(tmp_path / str(folder) / f"{digit}-{copy}.png")
            if folder != digit:
                wrong.add(f"{folder}/{digit}-{copy}.png")
    result = scan(tmp_path, ScanSettings(audit="always", epochs=10, cv=3, cache_dir=None))
    issues = result.issues
    flagged = set(issues["id"][issues["is_label_issue"]])
    assert len(wrong) > 20 and flagged <= wrong and len(flagged) >= 0.9 * len(wrong)
    assert set(issues["id"][:len(wrong)]) == wrong  # the ranking puts every wrong file first
