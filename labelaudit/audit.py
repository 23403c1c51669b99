"""Confident learning on out-of-sample probabilities, with cleanlab doing every step."""

from __future__ import annotations

import numpy as np

ISSUE_COLUMNS = ["id", "given_label", "suggested_label", "label_quality", "is_label_issue", "rank"]
# Above this many probabilities (rows x classes, 2 GB as float64 copies in cleanlab's in-memory
# filters), cleanlab's batched, low-memory filter decides is_label_issue.
LOW_MEMORY_FROM = 250_000_000
POOL_CHUNK = 200_000  # rows pooled at a time, so float64 temporaries stay small
# The ranking: cleanlab's normalized margin, (p[given] - max p[other] + 1) / 2, below 0.5 where
# another class is more probable than the given one. On the quality benchmark's grid of 36
# noise settings it ranked the injected errors better than self-confidence (mean AUPRC 0.861
# against 0.857, best of all contenders on 30 settings against 28), at no cost.
RANK_BY = "normalized_margin"


def member_weights(labels, members) -> list[float]:
    """Each member's accuracy on the given labels: cleanlab's weights for ensemble scoring.

    >>> member_weights(np.array([0, 1]), [np.array([[.9, .1], [.2, .8]]),
    ...                                   np.array([[.6, .4], [.7, .3]])])
    [1.0, 0.5]
    """
    labels = np.asarray(labels)
    return [float((np.asarray(p).argmax(1) == labels).mean()) for p in members]


def pool_probs(members, weights=None) -> np.ndarray:
    """The members' probabilities averaged, weighted by `weights` (e.g. `member_weights`).

    With accuracy weights, the pooled self-confidence in the given label equals cleanlab's
    ensemble label-quality score (`get_label_quality_ensemble_scores`,
    `weight_ensemble_members_by="accuracy"`), so cleanlab's filter and its ensemble ranking read
    the same probabilities. On the quality benchmark's quick run and 4,000 MNIST images this
    found more of the injected errors than the geometric mean of the members, which it replaced:
    F1 +0.3 to +2.6 points on four of the five settings, -0.3 on the mixed table; AUPRC +0.1 to
    +3.0 points on all five.

    >>> pool_probs([np.array([[0.9, 0.1]]), np.array([[0.5, 0.5]])], weights=[3, 1])
    array([[0.8, 0.2]], dtype=float32)
    """
    if weights is not None and not np.sum(weights) > 0:
        weights = None  # every member wrong on every sample: nothing to weight by
    out = np.empty(np.shape(members[0]), dtype=np.float32)
    for start in range(0, len(out), POOL_CHUNK):
        rows = slice(start, start + POOL_CHUNK)
        pooled = np.average([np.asarray(p[rows], dtype=np.float64) for p in members], axis=0,
                            weights=weights)
        out[rows] = pooled / pooled.sum(axis=1, keepdims=True)
    return out


def member_votes(labels, members: dict, *, filter_by="prune_by_noise_rate"):
    """Which members' own confident learning flags each sample, and the vote.

    Returns (is_label_issue, flagged_by): a sample is a label issue when at least half of the
    members flag it, each with cleanlab's `find_label_issues` on its own out-of-fold
    probabilities; `flagged_by` names them, joined by ";".

    Each member's filter counts as many errors as its own confident joint estimates, so the
    vote needs no threshold of its own: with four members two must agree, with three two, with
    two either one. On the quality benchmark's grid (36 settings, 3 seeds) cleanlab's filter on
    the pooled probabilities under-flagged at 10% noise on digits and wine and over-flagged on
    20 Newsgroups; the vote raised mean F1 from 0.775 to 0.789, the settings where it is at
    least the best contender's from 29 to 32, and its share of flagged samples was within 3
    points of the injected noise on 21 of 24 settings at 10-20% noise, where the pooled joint's
    estimate was on 18 (benchmarks/README.md). On a 100,000-row table with 10% noise and two
    members, either one flagging gave F1 0.980, the pooled filter 0.948, both 0.899.

    >>> labels = np.array([0, 0, 0, 1, 1, 1])
    >>> sure = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.1, .9], [.9, .1]])
    >>> unsure = np.array([[.9, .1], [.8, .2], [.6, .4], [.2, .8], [.1, .9], [.4, .6]])
    >>> flags, flagged_by = member_votes(labels, {"a": sure, "b": unsure})
    >>> flags.tolist(), flagged_by.tolist()
    ([False, False, True, False, False, True], ['', '', 'a', '', '', 'a'])
    """
    from cleanlab.filter import find_label_issues

    labels = np.asarray(labels, dtype=np.int64)
    flags = {name: find_label_issues(labels, np.asarray(probs, dtype=np.float64),
                                     filter_by=filter_by, n_jobs=1)
             for name, probs in members.items()}
    votes = np.sum(list(flags.values()), axis=0)
    names = np.full(len(labels), "", dtype=object)
    for name, flagged in flags.items():  # elementwise on object arrays: 10x a Python loop
        names[flagged] = np.where(names[flagged] == "", name, names[flagged] + ";" + name)
    return votes >= (len(members) + 1) // 2, names


def flagged_rank(flagged):
    """The `rank` column: 1..n down the flagged rows in their order, empty (<NA>) elsewhere.

    >>> flagged_rank([True, False, True]).tolist()
    [1, <NA>, 2]
    """
    import pandas as pd

    flagged = np.asarray(flagged, dtype=bool)
    rank = pd.array([pd.NA] * len(flagged), dtype="Int64")
    rank[flagged] = np.arange(1, int(flagged.sum()) + 1)
    return rank


def find_issues(labels, pred_probs, *, ids=None, classes=None, filter_by="prune_by_noise_rate",
                rank_by=RANK_BY, evidence=None, members=None, rank_probs=None):
    """One row per sample, sorted by label_quality ascending, with cleanlab's verdicts.

    `label_quality` is cleanlab's `rank_by` score of `rank_probs` (default `pred_probs`); the
    suggested label, the filter and the joint read `pred_probs`.

    `evidence` maps column names to per-sample arrays (in input order) appended after the
    contract's six columns, e.g. each ensemble member's own label quality. With `members`
    (name -> that member's out-of-fold probabilities, pooled into `pred_probs`),
    `is_label_issue` is their vote (`member_votes`) and a `flagged_by` column follows the
    evidence; without, cleanlab's filter on `pred_probs` decides.

    Returns (issues DataFrame, estimates dict). Columns start with ISSUE_COLUMNS; `rank` is
    1..n among flagged samples and empty (<NA>) for the others.

    >>> import numpy as np
    >>> labels = np.array([0, 0, 0, 1, 1, 1])
    >>> pred_probs = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.1, .9], [.7, .3]])
    >>> issues, est = find_issues(labels, pred_probs)
    >>> list(issues["id"][:2])
    ['2', '5']
    """
    import pandas as pd
    from cleanlab.count import estimate_joint
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, dtype=np.int64)
    n, k = np.shape(pred_probs)
    low_memory = n * k > LOW_MEMORY_FROM
    pred_probs = np.asarray(pred_probs, dtype=np.float32 if low_memory else np.float64)
    ids = np.arange(n).astype(str) if ids is None else np.asarray(ids, dtype=object)
    classes = [str(c) for c in range(k)] if classes is None else list(classes)

    quality = get_label_quality_scores(
        labels, pred_probs if rank_probs is None else np.asarray(rank_probs, pred_probs.dtype),
        method=rank_by)
    # cleanlab's worker processes only pay off on big inputs; small ones finish before they start.
    if low_memory:
        from cleanlab.experimental.label_issues_batched import find_label_issues_batched

        # Approximates filter_by="low_self_confidence": as many issues as the confident joint
        # estimates, the lowest-quality ones, without cleanlab's in-memory copies.
        filter_by = "low_self_confidence (batched, low memory)"
        is_issue = find_label_issues_batched(labels, pred_probs, batch_size=100_000, n_jobs=1,
                                             verbose=False, return_mask=True)
        flagged_by = None
    elif members:
        is_issue, flagged_by = member_votes(labels, members, filter_by=filter_by)
    else:
        is_issue = find_label_issues(labels, pred_probs, filter_by=filter_by,
                                     n_jobs=None if n > 200_000 else 1)
        flagged_by = None
    suggested = pred_probs.argmax(1)
    joint = estimate_joint(labels, pred_probs)

    frame = pd.DataFrame({
        "id": ids,
        "given_label": np.asarray(classes, dtype=object)[labels],
        "suggested_label": np.asarray(classes, dtype=object)[suggested],
        "label_quality": quality,
        "is_label_issue": is_issue,
    })
    for name, values in (evidence or {}).items():
        frame[name] = values
    if flagged_by is not None:
        frame["flagged_by"] = flagged_by
    # Stable sort with id as tie-breaker keeps the ranking deterministic.
    frame = frame.sort_values(["label_quality", "id"], kind="stable").reset_index(drop=True)
    frame.insert(5, "rank", flagged_rank(frame["is_label_issue"]))
    estimates = {
        "n_flagged": int(is_issue.sum()),
        # The share of samples flagged: each flag is a counted estimate (cleanlab's confident
        # joint, per member with the vote), and the report's count and rate then agree.
        "estimated_noise_rate": float(is_issue.mean()),
        "flagged_rate": float(is_issue.mean()),
        "joint_noise_rate": float(1.0 - np.trace(joint)),
        "per_class_issue_rate": {c: float(is_issue[labels == i].mean()) if (labels == i).any()
                                 else 0.0 for i, c in enumerate(classes)},
        "joint": joint.tolist(),  # rows: given label, columns: true label (cleanlab's estimate)
        "filter_by": filter_by,
        "rank_by": rank_by,
    }
    return frame, estimates
