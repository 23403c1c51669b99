"""Pooling the ensemble: the accuracy-weighted mean is cleanlab's ensemble score."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_members=st.integers(2, 4), n_classes=st.integers(2, 6))
def test_pooled_self_confidence_equals_cleanlabs_ensemble_score(seed, n_members, n_classes):
    from cleanlab.rank import get_label_quality_ensemble_scores, get_label_quality_scores

    from labelaudit.audit import member_weights, pool_probs

    rng = np.random.default_rng(seed)
    n = 60
    labels = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n - n_classes)])
    members = [rng.dirichlet(np.ones(n_classes), n).astype(np.float32) for _ in range(n_members)]
    pooled = pool_probs(members, member_weights(labels, members))
    ours = get_label_quality_scores(labels, pooled)
    cleanlabs = get_label_quality_ensemble_scores(labels, members,
                                                  weight_ensemble_members_by="accuracy",
                                                  verbose=False)
    np.testing.assert_allclose(ours, cleanlabs, atol=1e-6)
    np.testing.assert_allclose(pooled.sum(1), 1.0, atol=1e-6)


def test_member_weights_are_accuracies_on_the_given_labels():
    from labelaudit.audit import member_weights

    labels = np.array([0, 1, 1, 0])
    right = np.eye(2)[labels]
    wrong = np.eye(2)[1 - labels]
    assert member_weights(labels, [right, wrong, np.vstack([right[:2], wrong[2:]])]) == \
        [1.0, 0.0, 0.5]


def test_pooling_with_members_that_are_all_wrong_falls_back_to_the_plain_mean():
    from labelaudit.audit import member_weights, pool_probs

    labels = np.array([0, 1])
    wrong = [np.array([[0.2, 0.8], [0.9, 0.1]]), np.array([[0.4, 0.6], [0.7, 0.3]])]
    pooled = pool_probs(wrong, member_weights(labels, wrong))
    np.testing.assert_allclose(pooled, [[0.3, 0.7], [0.8, 0.2]], atol=1e-6)


def _members_and_truth(seed: int = 0, n: int = 400):
    """Two members that know the classes and two that cannot fit them, on labels with 10%
    flipped: (labels, members, is_flipped)."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 3, n)
    flipped = rng.random(n) < 0.1
    labels = np.where(flipped, (true + 1 + rng.integers(0, 2, n)) % 3, true)

    def member(skill):
        guess = np.where(rng.random(n) < skill, true, rng.integers(0, 3, n))
        return 0.7 * np.eye(3)[guess] + 0.3 * rng.dirichlet(np.ones(3), n)

    return labels, {"good": member(0.97), "also_good": member(0.95), "weak": member(0.3),
                    "also_weak": member(0.3)}, flipped


def test_members_far_less_accurate_than_the_best_do_not_count_in_the_vote():
    from labelaudit.audit import VOTE_MARGIN, member_votes, member_weights, voters

    labels, members, flipped = _members_and_truth()
    accuracy = dict(zip(members, member_weights(labels, list(members.values())), strict=True))
    assert accuracy["good"] - accuracy["weak"] > VOTE_MARGIN
    assert voters(labels, members) == ["good", "also_good"]
    flags, flagged_by = member_votes(labels, members)
    # The bar stays at half of all four: both strong members must agree.
    assert set(flagged_by[flags]) == {"good;also_good"}
    assert "weak" not in ";".join(flagged_by)
    precision = flipped[flags].mean()
    assert precision > 0.9 and flags.sum() <= 1.2 * flipped.sum()


def test_a_table_a_linear_model_cannot_fit_is_flagged_near_its_noise_rate(tmp_path):
    import pandas as pd
    from sklearn.datasets import make_gaussian_quantiles

    from labelaudit.noise import inject_noise
    from labelaudit.scan import scan
    from labelaudit.settings import ScanSettings

    X, y = make_gaussian_quantiles(n_samples=800, n_features=4, n_classes=3, random_state=0)
    labels = inject_noise(y, 0.1, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(label=labels)
    frame.to_csv(tmp_path / "shells.csv", index_label="id")
    result = scan(tmp_path / "shells.csv", ScanSettings(audit="always", cache_dir=None))
    assert "logreg" not in result.audit["voters"]  # nested shells: no line separates them
    flagged = result.issues.set_index("id").loc[[str(i) for i in range(800)], "is_label_issue"]
    wrong = labels != y
    assert flagged.sum() < 1.5 * wrong.sum()
    assert wrong[flagged.to_numpy()].mean() > 0.6
