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
