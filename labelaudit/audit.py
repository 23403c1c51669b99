"""Confident learning on out-of-sample probabilities, with cleanlab doing every step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ISSUE_COLUMNS = ["id", "given_label", "suggested_label", "label_quality", "is_label_issue", "rank"]
# Above this many probabilities (rows x classes, 2 GB as float64 copies in cleanlab's in-memory
# filters), cleanlab's batched, low-memory filter decides is_label_issue.
LOW_MEMORY_FROM = 250_000_000
POOL_CHUNK = 200_000  # rows pooled at a time, so float64 temporaries stay small
# The ranking: cleanlab's normalized margin, (p[given] - max p[other] + 1) / 2, below 0.5 where
# another class is more probable than the given one; it ranked injected errors best on the
# quality benchmark (benchmarks/README.md).
RANK_BY = "normalized_margin"


def member_weights(labels, members) -> list[float]:
    """Each member's accuracy on the given labels: cleanlab's weights for ensemble scoring.

    >>> member_weights(np.array([0, 1]), [np.array([[.9, .1], [.2, .8]]),
    ...                                   np.array([[.6, .4], [.7, .3]])])
    [1.0, 0.5]
    """
    labels = np.asarray(labels)
    return [float((np.asarray(p).argmax(1) == labels).mean()) for p in members]


# Members that learn from the user's vectors (--embeddings, --encoder) join the ensemble only as
# far as their out-of-fold accuracy on the given labels supports. They join together, when the
# better of them is at most JOIN_MARGIN below the best of the kind's own members: less accurate
# vectors can sharpen the ranking of injected errors, but on the errors people confirmed in
# 20 Newsgroups they ranked fewer than TF-IDF alone, and a scan must never get worse with them;
# together, they keep the vote's majority odd where it was. Where they join, each own member
# more than STEP_OUT_MARGIN below the better of them steps out.
JOIN_MARGIN = 0.02
STEP_OUT_MARGIN = 0.05


@dataclass(frozen=True)
class Gate:
    """What `gate_members` decided: summary.json's audit.member_accuracy, audit.left_out (name
    -> why) and audit.gate (one sentence, also said on stderr)."""

    accuracy: dict
    left_out: dict
    note: str


def gate_members(labels, members: dict, *, embedded, follows=None) -> Gate:
    """Which members vote and rank beside the user's vectors: all but `left_out`.

    `members` maps each member that could vote or rank to its out-of-fold probabilities;
    `embedded` names those that learned from the user's vectors. A member in `follows` (name ->
    leader) is judged with its leader: the training dynamics are probabilities on samples the
    network trained on, so their own accuracy says nothing.

    >>> labels = np.array([0, 0, 1, 1])
    >>> right, wrong = np.eye(2)[labels], np.eye(2)[1 - labels]
    >>> gate = gate_members(labels, {"mlp": wrong, "logreg": right, "vectors": right},
    ...                     embedded=["vectors"])
    >>> gate.accuracy, list(gate.left_out)
    ({'mlp': 0.0, 'logreg': 1.0, 'vectors': 1.0}, ['mlp'])
    """
    follows = follows or {}
    judged = [name for name in members if name not in follows]
    accuracy = dict(zip(judged, member_weights(labels, [members[n] for n in judged]),
                        strict=True))
    own = [name for name in judged if name not in embedded]
    ours = [name for name in judged if name in embedded]
    best_own, best = max(own, key=accuracy.get), max(ours, key=accuracy.get)
    joined = accuracy[best] >= accuracy[best_own] - JOIN_MARGIN
    if joined:
        left_out = {name: f"out-of-fold accuracy {accuracy[name]:.3f}, more than "
                          f"{STEP_OUT_MARGIN} below {best}'s {accuracy[best]:.3f}"
                    for name in own if accuracy[name] < accuracy[best] - STEP_OUT_MARGIN}
    else:
        left_out = {name: f"out-of-fold accuracy {accuracy[name]:.3f}; the better on the vectors, "
                          f"{best}, is more than {JOIN_MARGIN} below {best_own}'s "
                          f"{accuracy[best_own]:.3f}" for name in ours}
    left_out.update({name: f"follows {leader}, which stepped out" for name, leader in
                     follows.items() if name in members and leader in left_out})
    return Gate(accuracy=accuracy, left_out=left_out,
                note=_gate_note(accuracy, ours if joined else [], left_out, ours, best_own))


def _gate_note(accuracy: dict, joined: list, left_out: dict, ours: list, best_own: str) -> str:
    """The gate's decision in one sentence."""
    listed = ", ".join(f"{n} ({accuracy[n]:.3f})" for n in ours)
    head = f"embeddings: out-of-fold accuracy on the given labels {listed}; the best of the " \
           f"others, {best_own}, {accuracy[best_own]:.3f}"
    if not joined:
        return f"{head}: left out (more than {JOIN_MARGIN} below), the ensemble is as without them"
    stepped = [n for n in left_out if n not in ours]
    return f"{head}: {', '.join(joined)} vote and rank" + (
        f"; {', '.join(stepped)} step out" if stepped else "")


def rank_weights(labels, members) -> list[float]:
    """Each member's weight in the ranking pool: the inverse of its out-of-fold error rate (a
    member that errs nowhere counts as erring once).

    A member that errs half as often counts twice as much, which lifts the confirmed label
    errors of MNIST and 20 Newsgroups and the injected ones alike (benchmarks/README.md); the
    vote and the suggested label keep the accuracy weights.

    >>> rank_weights(np.array([0, 1, 1, 1]), [np.eye(2)[[0, 1, 1, 0]], np.eye(2)[[0, 1, 0, 0]]])
    [4.0, 2.0]
    """
    n = max(len(labels), 1)
    return [1 / max(1 - accuracy, 1 / n) for accuracy in member_weights(labels, members)]


def pool_probs(members, weights=None) -> np.ndarray:
    """The members' probabilities averaged, weighted by `weights` (e.g. `member_weights`).

    With accuracy weights, the pooled self-confidence in the given label equals cleanlab's
    ensemble label-quality score (`get_label_quality_ensemble_scores`,
    `weight_ensemble_members_by="accuracy"`), so cleanlab's filter and its ensemble ranking read
    the same probabilities.

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


# A member whose out-of-fold accuracy is more than this below the most accurate member's does
# not count in the vote: a model that cannot fit the data (a linear one on nested classes) flags
# what it cannot fit, and two such members agreeing outvoted the rest (benchmarks/README.md).
VOTE_MARGIN = 0.1


def voters(labels, members: dict) -> list[str]:
    """The members whose flags count in the vote: those within VOTE_MARGIN of the most accurate
    member's out-of-fold accuracy on the given labels.

    >>> labels = np.array([0, 0, 1, 1])
    >>> voters(labels, {"good": np.eye(2)[labels], "weak": np.eye(2)[[0, 1, 1, 0]]})
    ['good']
    """
    accuracy = dict(zip(members, member_weights(labels, list(members.values())), strict=True))
    best = max(accuracy.values())
    return [name for name in members if accuracy[name] >= best - VOTE_MARGIN]


def member_votes(labels, members: dict, *, filter_by="prune_by_noise_rate"):
    """Which members' own confident learning flags each sample, and the vote.

    Returns (is_label_issue, flagged_by): a sample is a label issue when the `voters` that flag
    it, each with cleanlab's `find_label_issues` on its own out-of-fold probabilities, make at
    least half of all the members; `flagged_by` names them, joined by ";". A member too weak to
    vote counts as not flagging, so the bar stays where it was.

    Each member's filter counts as many errors as its own confident joint estimates, so the
    vote needs no threshold of its own: with four members two must agree, with three two, with
    two either one. Its share of flagged samples tracks the injected noise more closely than
    cleanlab's filter on the pooled probabilities (benchmarks/README.md).

    >>> labels = np.array([0, 0, 0, 1, 1, 1])
    >>> sure = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.1, .9], [.9, .1]])
    >>> unsure = np.array([[.9, .1], [.8, .2], [.45, .55], [.2, .8], [.1, .9], [.7, .3]])
    >>> flags, flagged_by = member_votes(labels, {"a": sure, "b": unsure})
    >>> flags.tolist(), flagged_by.tolist()
    ([False, False, True, False, False, True], ['', '', 'a', '', '', 'a'])
    """
    from cleanlab.filter import find_label_issues

    labels = np.asarray(labels, dtype=np.int64)
    flags = {name: find_label_issues(labels, np.asarray(members[name], dtype=np.float64),
                                     filter_by=filter_by, n_jobs=1)
             for name in voters(labels, members)}
    votes = np.sum(list(flags.values()), axis=0)
    names = np.full(len(labels), "", dtype=object)
    for name, flagged in flags.items():  # elementwise on object arrays, not a Python loop
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


def audit_ensemble(labels, members: dict, *, votes, ranks, ids=None, classes=None,
                   filter_by="prune_by_noise_rate"):
    """Confident learning on an ensemble: the `votes` members flag, the `ranks` members rank.

    `members` maps names to probabilities (n_samples, n_classes). The voting members' pool,
    weighted by accuracy (`member_weights`), gives `pred_probs` (suggested label, joint) and
    `is_label_issue` is their vote; the ranking members' pool, weighted by inverse error
    (`rank_weights`), gives `label_quality`, and each of them an evidence column
    quality_<name>.

    Returns (issues, estimates, pred_probs), as `find_issues` with the members, their weights
    and the out-of-fold accuracy in the estimates.

    >>> labels = np.array([0, 0, 0, 1, 1, 1])
    >>> a = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.1, .9], [.9, .1]])
    >>> b = np.array([[.7, .3], [.8, .2], [.4, .6], [.3, .7], [.2, .8], [.6, .4]])
    >>> issues, estimates, _ = audit_ensemble(labels, {"a": a, "b": b}, votes=["a"],
    ...                                       ranks=["a", "b"])
    >>> issues["id"][issues["is_label_issue"]].tolist(), list(issues.columns[6:])
    (['2', '5'], ['quality_a', 'quality_b', 'flagged_by'])
    """
    from cleanlab.rank import get_label_quality_scores

    scored = [name for name in members if name in votes or name in ranks]
    weight_of = dict(zip(scored, member_weights(labels, [members[n] for n in scored]),
                         strict=True))

    def pool(names, weights):
        return pool_probs([members[n] for n in names], [weights[n] for n in names])

    pred_probs = pool(votes, weight_of)
    rank_weight_of = dict(zip(ranks, rank_weights(labels, [members[n] for n in ranks]),
                              strict=True))
    evidence = {f"quality_{name}": get_label_quality_scores(labels, members[name], method=RANK_BY)
                for name in ranks}
    issues, estimates = find_issues(
        labels, pred_probs, ids=ids, classes=classes, filter_by=filter_by, evidence=evidence,
        members={name: members[name] for name in votes},
        rank_probs=pool(ranks, rank_weight_of))
    estimates["members"] = list(votes)
    estimates["voters"] = voters(labels, {name: members[name] for name in votes})
    estimates["member_weights"] = weight_of
    estimates["rank_weights"] = {name: round(w, 3) for name, w in rank_weight_of.items()}
    estimates["accuracy_out_of_fold"] = float((pred_probs.argmax(1) == labels).mean())
    return issues, estimates, pred_probs


def find_issues(labels, pred_probs, *, ids=None, classes=None, filter_by="prune_by_noise_rate",
                rank_by=RANK_BY, evidence=None, members=None, rank_probs=None):
    """One row per sample, sorted by label_quality ascending, with cleanlab's verdicts.

    `label_quality` is cleanlab's `rank_by` score of `rank_probs` (default `pred_probs`); the
    suggested label, the filter and the joint read `pred_probs`.

    `evidence` maps column names to per-sample arrays (in input order) appended after the
    contract's six columns, e.g. each ensemble member's own label quality. With `members`
    (name -> the out-of-fold probabilities of each member that votes, pooled into
    `pred_probs`), `is_label_issue` is their vote (`member_votes`) and a `flagged_by` column
    follows the evidence; without, cleanlab's filter on `pred_probs` decides.

    Returns (issues DataFrame, estimates dict). Columns start with ISSUE_COLUMNS; `rank` is
    1..n among flagged samples and empty (<NA>) for the others.

    >>> import numpy as np
    >>> labels = np.array([0, 0, 0, 1, 1, 1])
    >>> pred_probs = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.1, .9], [.7, .3]])
    >>> issues, est = find_issues(labels, pred_probs)
    >>> list(issues["id"][:2])
    ['2', '5']
    """
    from cleanlab.rank import get_label_quality_scores

    labels, pred_probs, ids, classes, low_memory = _as_arrays(labels, pred_probs, ids, classes)
    quality = get_label_quality_scores(
        labels, pred_probs if rank_probs is None else np.asarray(rank_probs, pred_probs.dtype),
        method=rank_by)
    is_issue, flagged_by, filter_by = _flag(labels, pred_probs, members=members,
                                            filter_by=filter_by, low_memory=low_memory)
    columns = {"id": ids, "given_label": np.asarray(classes, dtype=object)[labels],
               "suggested_label": np.asarray(classes, dtype=object)[pred_probs.argmax(1)],
               "label_quality": quality, "is_label_issue": is_issue, **(evidence or {})}
    if flagged_by is not None:
        columns["flagged_by"] = flagged_by
    return _ranked(columns), _estimates(labels, pred_probs, is_issue, classes=classes,
                                        filter_by=filter_by, rank_by=rank_by)


def _as_arrays(labels, pred_probs, ids, classes):
    """(labels, pred_probs, ids, class names, low_memory) with the defaults filled in; large
    problems use float32 probabilities, as cleanlab's low-memory filter does."""
    labels = np.asarray(labels, dtype=np.int64)
    n, k = np.shape(pred_probs)
    low_memory = n * k > LOW_MEMORY_FROM
    pred_probs = np.asarray(pred_probs, dtype=np.float32 if low_memory else np.float64)
    ids = np.arange(n).astype(str) if ids is None else np.asarray(ids, dtype=object)
    classes = [str(c) for c in range(k)] if classes is None else list(classes)
    return labels, pred_probs, ids, classes, low_memory


def _ranked(columns: dict):
    """The issues table of `columns`, sorted by label_quality, with `rank` among the flagged."""
    import pandas as pd

    frame = pd.DataFrame(columns)
    # Stable sort with id as tie-breaker keeps the ranking deterministic.
    frame = frame.sort_values(["label_quality", "id"], kind="stable").reset_index(drop=True)
    frame.insert(5, "rank", flagged_rank(frame["is_label_issue"]))
    return frame


def _flag(labels, pred_probs, *, members, filter_by, low_memory):
    """(is_label_issue, flagged_by or None, the filter that decided)."""
    from cleanlab.filter import find_label_issues

    if low_memory:
        from cleanlab.experimental.label_issues_batched import find_label_issues_batched

        # Approximates filter_by="low_self_confidence": as many issues as the confident joint
        # estimates, the lowest-quality ones, without cleanlab's in-memory copies.
        return (find_label_issues_batched(labels, pred_probs, batch_size=100_000, n_jobs=1,
                                          verbose=False, return_mask=True), None,
                "low_self_confidence (batched, low memory)")
    if members:
        return (*member_votes(labels, members, filter_by=filter_by), filter_by)
    # cleanlab's worker processes only pay off on big inputs; small ones finish before they start.
    return (find_label_issues(labels, pred_probs, filter_by=filter_by,
                              n_jobs=None if len(labels) > 200_000 else 1), None, filter_by)


def _estimates(labels, pred_probs, is_issue, *, classes, filter_by, rank_by) -> dict:
    """summary.json's audit estimates: counts and rates of the flags, and cleanlab's joint."""
    from cleanlab.count import estimate_joint

    joint = estimate_joint(labels, pred_probs)
    # The share flagged estimates the noise: each flag is counted by a confident joint (per
    # member with the vote), so the report's count and rate agree.
    rate = float(is_issue.mean())
    return {
        "n_flagged": int(is_issue.sum()),
        "estimated_noise_rate": rate,
        "flagged_rate": rate,
        "joint_noise_rate": float(1.0 - np.trace(joint)),
        "per_class_issue_rate": {c: float(is_issue[labels == i].mean()) if (labels == i).any()
                                 else 0.0 for i, c in enumerate(classes)},
        "joint": joint.tolist(),  # rows: given label, columns: true label (cleanlab's estimate)
        "filter_by": filter_by,
        "rank_by": rank_by,
    }
