"""Score rules that turn out-of-fold probabilities into `is_label_issue`, without retraining.

    python benchmarks/quality.py ... --contenders labelaudit --save-probs probs/   # first
    python benchmarks/flag_rules.py probs/ benchmarks/results/quality-grid3.csv

Reads every `.npz` that `quality.py --save-probs` wrote (the given and true labels, the pooled
and every member's out-of-fold probabilities of one labelaudit run), flags samples under each
rule, and compares each rule's F1, averaged over seeds per setting, with the best contender's
in the CSV's recipe, datalab-knn and expert rows. The ranking is labelaudit's for every rule,
so only F1 and the noise estimate move. This is how the members' vote was chosen, and how
flagging the head of the ranking instead was measured (benchmarks/README.md, "Flag rules").
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

SETTING = ["dataset", "noise", "noise_type"]
RUN = re.compile(r"(.+)-([\d.]+)-(uniform|class-dependent)-(\d+)-labelaudit")


def lowest(quality, count: int) -> np.ndarray:
    flags = np.zeros(len(quality), dtype=bool)
    flags[np.argsort(quality, kind="stable")[:int(count)]] = True
    return flags


def rules(labels, pooled, members: dict, dynamics=None) -> dict:
    """{rule name: boolean flags} for one run. `members` are the voters; the ranking is
    labelaudit's (the voters and, where saved, the training dynamics, by inverse-error weights)."""
    from cleanlab.count import num_label_issues
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from labelaudit.audit import RANK_BY, pool_probs, rank_weights

    rankers = [*members.values(), *([] if dynamics is None else [dynamics])]
    quality = get_label_quality_scores(
        labels, pool_probs(rankers, rank_weights(labels, rankers)).astype(np.float64),
        method=RANK_BY)
    out = {"pooled prune_by_noise_rate": find_label_issues(labels, pooled)}
    for filter_by in ("prune_by_class", "both", "confident_learning", "predicted_neq_given"):
        out[f"pooled {filter_by}"] = find_label_issues(labels, pooled, filter_by=filter_by)
    votes = np.sum([find_label_issues(labels, p) for p in members.values()], axis=0)
    for k in range(1, len(members) + 1):
        out[f"at least {k} members"] = votes >= k
    out["at least half of the members"] = votes >= (len(members) + 1) // 2
    out["pooled, or at least 2 members"] = out["pooled prune_by_noise_rate"] | (votes >= 2)
    out["pooled, or at least 3 members"] = out["pooled prune_by_noise_rate"] | (votes >= 3)
    counts = {name: num_label_issues(labels, p) for name, p in members.items()}
    accuracy = {name: (p.argmax(1) == labels).mean() for name, p in members.items()}
    out["lowest, members' mean count"] = lowest(quality, round(np.mean(list(counts.values()))))
    out["lowest, members' median count"] = lowest(quality,
                                                  round(np.median(list(counts.values()))))
    out["lowest, best member's count"] = lowest(quality, counts[max(accuracy, key=accuracy.get)])
    out["lowest, off_diagonal_calibrated count"] = lowest(quality, num_label_issues(
        labels, pooled, estimation_method="off_diagonal_calibrated"))
    # The top of the ranking, as many as the vote flags: the flagged rows would be the list's head.
    vote = out["at least half of the members"]
    out["lowest, the vote's count"] = lowest(quality, vote.sum())
    out["lowest, pooled count"] = lowest(quality, num_label_issues(labels, pooled))
    # Members far less accurate than the best leave the vote: their own confident learning
    # flags whatever they cannot fit, and two weak members agreeing would outvote the rest.
    for margin in (0.05, 0.07, 0.08, 0.1, 0.12, 0.15, 0.2):
        strong = [n for n in members if accuracy[n] >= max(accuracy.values()) - margin]
        strong_votes = np.sum([find_label_issues(labels, members[n]) for n in strong], axis=0)
        out[f"the vote of members within {margin} of the best's accuracy"] = \
            strong_votes >= (len(strong) + 1) // 2
        out[f"half of all members' votes, counting those within {margin} of the best"] = \
            strong_votes >= (len(members) + 1) // 2
    # The vote, kept only where the pooled probabilities prefer another class than the given
    # one: confident learning's per-class thresholds are low for a rare class, so each member
    # flags samples the ensemble as a whole still gives to their label.
    strong = [n for n in members if accuracy[n] >= max(accuracy.values()) - 0.1]
    vote_now = np.sum([find_label_issues(labels, members[n]) for n in strong],
                      axis=0) >= (len(members) + 1) // 2
    out["the vote, where the pooled probabilities prefer another class"] = \
        vote_now & (pooled.argmax(1) != labels)
    out["the vote, where the ranking's pool prefers another class"] = vote_now & (quality < 0.5)
    out["the vote, or the ranking's pool prefers another class by 0.2"] = \
        vote_now | (quality < 0.4)
    # The vote, capped at a count from the pooled probabilities: on hard data every member
    # flags many hard but right samples, and two of four agreeing is then common.
    caps = {"cleanlab's pooled filter's count": find_label_issues(labels, pooled).sum(),
            "the pooled off_diagonal count": num_label_issues(labels, pooled),
            "the pooled off_diagonal_calibrated count": num_label_issues(
                labels, pooled, estimation_method="off_diagonal_calibrated")}
    for filter_by in ("both", "prune_by_class", "confident_learning"):
        strict = np.sum([find_label_issues(labels, members[n], filter_by=filter_by)
                         for n in strong], axis=0)
        out[f"the vote, each member by {filter_by}"] = strict >= (len(members) + 1) // 2
    for name, cap in caps.items():
        capped = np.where(vote_now, quality, np.inf)
        out[f"the vote, at most {name}"] = vote_now & lowest(capped, min(cap, vote_now.sum()))
    return out


def main(argv=None) -> int:
    from cleanlab.count import estimate_joint
    from sklearn.metrics import f1_score

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("probs", type=Path, help="the folder quality.py --save-probs wrote")
    parser.add_argument("runs", type=Path, help="a quality.py CSV with the contenders' rows")
    args = parser.parse_args(argv)

    rows = []
    for path in sorted(args.probs.glob("*.npz")):
        match = RUN.fullmatch(path.stem)
        if match is None:
            continue
        setting = dict(dataset=match[1], noise=float(match[2]), noise_type=match[3],
                       seed=int(match[4]))
        saved = np.load(path)
        labels = saved["labels"]
        truth = labels != saved["true_labels"]
        pooled = saved["pred_probs"].astype(np.float64)
        members = {key.removeprefix("member_"): saved[key].astype(np.float64)
                   for key in saved.files if key.startswith("member_")}
        dynamics = saved["dynamics"].astype(np.float64) if "dynamics" in saved.files else None
        for rule, flags in rules(labels, pooled, members, dynamics).items():
            rows.append({**setting, "rule": rule, "f1": f1_score(truth, flags, zero_division=0),
                         "estimate": flags.mean(), "injected": truth.mean()})
        rows.append({**setting, "rule": "pooled joint (1 - trace)", "f1": np.nan,
                     "estimate": 1 - np.trace(estimate_joint(labels, pooled)),
                     "injected": truth.mean()})
    if not rows:
        raise SystemExit(f"no quality.py --save-probs files in {args.probs}")
    runs = pd.DataFrame(rows)
    contenders = pd.read_csv(args.runs)
    contenders = contenders[contenders["contender"].isin(["recipe", "datalab-knn", "expert"])]
    best = contenders.groupby(SETTING + ["contender"])["f1"].mean().groupby(SETTING).max()

    table = []
    for rule, part in runs.groupby("rule", sort=False):
        means = part.groupby(SETTING)[["f1", "estimate", "injected"]].mean()
        low = means[means.index.get_level_values("noise") < 0.3]
        within = int(((low["estimate"] - low["injected"]).abs() <= 0.03).sum())
        lead = (means["f1"] - best.reindex(means.index)).dropna()
        table.append({"rule": rule, "mean F1": means["f1"].mean(),
                      "F1 >= best": f"{int((lead >= -1e-9).sum())}/{len(lead)}",
                      "mean lead (points)": 100 * lead.mean(),
                      "worst (points)": 100 * lead.min(),
                      "estimate within 3 points": f"{within}/{len(low)}"})
    table = pd.DataFrame(table).sort_values("mean lead (points)", ascending=False,
                                            na_position="last")
    print("| " + " | ".join(table.columns) + " |")
    print("| --- " + "| ---: " * (len(table.columns) - 1) + "|")
    for row in table.itertuples(index=False):
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row)
              + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
