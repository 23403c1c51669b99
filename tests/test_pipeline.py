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
