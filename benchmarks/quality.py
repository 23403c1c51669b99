"""Which finds more of the real label errors: labelaudit or the alternatives users already have?

Known errors are injected with cleanlab's noise generation (`labelaudit.noise.inject_noise`) at
10/20/40%, uniform (frac_zero_noise_rates=0) and class-dependent (0.5), with several seeds, into
images (scikit-learn's digits, the MNIST test set), tables (wine, breast cancer, a generated
mixed numeric and categorical table) and text (the 20 Newsgroups test set, and its subject lines
alone as a set of short texts). Each contender in benchmarks/contenders.py sees the same noisy
labels; each run is scored on `is_label_issue` (precision, recall, F1), on its label-quality
ranking (AUPRC), on its estimated noise rate against the injected one, and on wall time.

    python benchmarks/quality.py --quick         # a few minutes on 2 cores (what CI may run)
    python benchmarks/quality.py                 # everything: hours on a laptop
    python benchmarks/quality.py --datasets wine,digits --noise 0.2 --seeds 1 --levers
    python benchmarks/quality.py --datasets 20news --encoder all-MiniLM-L6-v2 \\
        --contenders labelaudit                  # + labelaudit+encoder: scan --encoder NAME

MNIST and 20 Newsgroups are read from ../shared/data (skipped with a note when absent). The
markdown tables go to stdout, progress to stderr, every run to benchmarks/results/*.csv.
Errors already in the original data are unknown and count as false positives for everyone.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from contenders import CONTENDERS, Bench, Found  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
RESULTS = HERE / "results"
# "iris", "quantiles", "moons" and "imbalanced" are held out: no default was chosen on them.
KINDS = {"images": ("digits", "mnist"),
         "tabular": ("wine", "breast-cancer", "mixed", "iris", "quantiles", "moons",
                     "imbalanced"),
         "text": ("20news", "20news-subjects")}
DATASETS = tuple(name for names in KINDS.values() for name in names)
NOISE_RATES = (0.1, 0.2, 0.4)
NOISE_TYPES = {"uniform": 0.0, "class-dependent": 0.5}  # frac_zero_noise_rates
SEEDS = 3
# --quick: small samples of one dataset per kind (plus the tiny wine), one setting, one seed.
# 20 Newsgroups keeps 5 of its groups: cleanlab's noise generation floors the flips per class
# pair, so 20 classes of a few dozen posts each would receive almost no errors.
QUICK = {"datasets": ("digits", "wine", "mixed", "20news"), "noise": (0.2,),
         "noise_types": ("uniform",), "seeds": 1,
         "max_samples": {"digits": 800, "mixed": 600, "20news": 800, "mnist": 1000},
         "max_classes": {"20news": 5}}


# -- data ---------------------------------------------------------------------------------------


def load_bench(name: str) -> Bench | None:
    """Load one benchmark dataset with its true labels; None when its files are absent."""
    from sklearn import datasets

    if name == "digits":
        bunch = datasets.load_digits()
        images = np.round(bunch.images * (255 / 16)).astype(np.uint8)[:, None]
        return Bench(name, "images", images, bunch.target, tuple(map(str, bunch.target_names)))
    if name in ("wine", "breast-cancer"):
        bunch = (datasets.load_wine if name == "wine" else datasets.load_breast_cancer)()
        frame = pd.DataFrame(bunch.data, columns=[str(c) for c in bunch.feature_names])
        return Bench(name, "tabular", frame, bunch.target, tuple(map(str, bunch.target_names)))
    if name == "iris":
        bunch = datasets.load_iris()
        frame = pd.DataFrame(bunch.data, columns=[str(c) for c in bunch.feature_names])
        return Bench(name, "tabular", frame, bunch.target, tuple(map(str, bunch.target_names)))
    if name == "mixed":
        return mixed_table()
    if name == "quantiles":
        return quantiles_table()
    if name == "moons":
        return moons_table()
    if name == "imbalanced":
        return imbalanced_table()
    if name == "mnist":
        return read_mnist(SHARED / "mnist-test")
    if name == "20news":
        return read_20news(SHARED / "20news-test")
    if name == "20news-subjects":
        return subject_lines(read_20news(SHARED / "20news-test"))
    raise SystemExit(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")


def mixed_table(n: int = 1500, seed: int = 0) -> Bench:
    """Numeric columns plus categorical ones that carry part of the signal (binned features)."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=10, n_informative=6, n_redundant=2,
                               n_classes=4, n_clusters_per_class=2, class_sep=2.5,
                               random_state=seed)
    frame = pd.DataFrame(X[:, 2:], columns=[f"num{i}" for i in range(X.shape[1] - 2)])
    # Two informative features survive only as categories, one of them with unordered names.
    frame["grade"] = pd.cut(X[:, 0], [-np.inf, -1, 0, 1, np.inf], labels=list("DCBA")) \
        .astype(str)
    frame["colour"] = np.array(["red", "green", "blue", "grey", "pink", "teal"])[
        np.clip(np.floor(X[:, 1] + 3), 0, 5).astype(int)]
    return Bench("mixed", "tabular", frame, y, ("k0", "k1", "k2", "k3"))


def quantiles_table(n: int = 1500, seed: int = 0) -> Bench:
    """Classes as nested shells around one centre (scikit-learn's make_gaussian_quantiles): no
    line separates them, so a linear model is far weaker here than neighbours or a network."""
    from sklearn.datasets import make_gaussian_quantiles

    X, y = make_gaussian_quantiles(n_samples=n, n_features=4, n_classes=3, random_state=seed)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    return Bench("quantiles", "tabular", frame, y, ("inner", "middle", "outer"))


def moons_table(n: int = 1500, seed: int = 0) -> Bench:
    """Two interleaved half circles (scikit-learn's make_moons) beside four columns of pure
    noise: a curved boundary that the columns alone do not give away."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n, noise=0.2, random_state=seed)
    noise = np.random.default_rng(seed).normal(size=(n, 4))
    frame = pd.DataFrame(np.hstack([X, noise]), columns=["x", "y", *(f"n{i}" for i in range(4))])
    return Bench("moons", "tabular", frame, y, ("upper", "lower"))


def imbalanced_table(n: int = 1500, seed: int = 0) -> Bench:
    """Five classes from 50% of the rows down to 4% (make_classification with weights), columns
    on scales from 0.01 to 1,000: the rare classes are where a flip is hardest to tell apart."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=12, n_informative=6, n_redundant=2,
                               n_classes=5, n_clusters_per_class=1, class_sep=1.5,
                               weights=[0.5, 0.25, 0.13, 0.08, 0.04], random_state=seed)
    X = X * np.logspace(-2, 3, X.shape[1])
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    return Bench("imbalanced", "tabular", frame, y, ("common", "frequent", "middle", "scarce",
                                                     "rare"))


def read_mnist(folder: Path) -> Bench | None:
    """The MNIST test set from its original idx files (t10k-*-ubyte.gz)."""
    images, labels = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    if not (images.is_file() and labels.is_file()):
        return None
    pixels = np.frombuffer(gzip.open(images).read(), dtype=np.uint8, offset=16)
    y = np.frombuffer(gzip.open(labels).read(), dtype=np.uint8, offset=8).astype(np.int64)
    return Bench("mnist", "images", pixels.reshape(-1, 1, 28, 28).copy(), y,
                 tuple(str(d) for d in range(10)))


def read_20news(folder: Path) -> Bench | None:
    """The 20 Newsgroups test posts (latin-1, as scikit-learn reads them); label = folder."""
    archive = folder / "20news-bydate-test.tar.gz"
    if not archive.is_file():
        return None
    texts, groups = [], []
    with tarfile.open(archive) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3:
                texts.append(tar.extractfile(member).read().decode("latin-1"))
                groups.append(parts[1])
    classes = tuple(sorted(set(groups)))
    y = np.searchsorted(classes, groups)
    return Bench("20news", "text", np.array(texts, dtype=object), y, classes)


def subject_lines(bench: Bench | None) -> Bench | None:
    """Each post's subject line alone, without its "Re:" prefixes: short texts, where a
    pretrained sentence encoder knows more than TF-IDF can learn from a few words."""
    import re
    from dataclasses import replace

    if bench is None:
        return None
    subject = re.compile(r"^Subject:(.*)$", re.MULTILINE)
    reply = re.compile(r"^\s*(re:\s*)+", re.IGNORECASE)

    def line(text: str) -> str:
        found = subject.search(text)
        return reply.sub("", found.group(1).strip()) if found else ""

    return replace(bench, name="20news-subjects",
                   inputs=np.array([line(t) or "(no subject)" for t in bench.inputs],
                                   dtype=object))


def subsample(bench: Bench, n: int | None, *, max_classes: int | None = None,
              seed: int = 0) -> Bench:
    """A stratified sample of `n` samples (the same for every contender, noise rate and seed).

    With `max_classes`, only that many classes, evenly spaced in the class list, are kept.
    """
    from dataclasses import replace

    from sklearn.model_selection import train_test_split

    if max_classes is not None and max_classes < bench.n_classes:
        kept = np.unique(np.linspace(0, bench.n_classes - 1, max_classes).round().astype(int))
        rows = np.flatnonzero(np.isin(bench.y, kept))
        inputs = bench.inputs.iloc[rows].reset_index(drop=True) if bench.kind == "tabular" \
            else bench.inputs[rows]
        bench = replace(bench, inputs=inputs, y=np.searchsorted(kept, bench.y[rows]),
                        classes=tuple(bench.classes[k] for k in kept))
    if n is None or n >= len(bench.y):
        return bench
    keep, _ = train_test_split(np.arange(len(bench.y)), train_size=n, stratify=bench.y,
                               random_state=seed)
    keep = np.sort(keep)
    inputs = bench.inputs.iloc[keep].reset_index(drop=True) if bench.kind == "tabular" \
        else bench.inputs[keep]
    return replace(bench, inputs=inputs, y=bench.y[keep])


# -- runs ---------------------------------------------------------------------------------------


def score(is_noisy, found: Found) -> dict:
    """Precision, recall, F1 and AUPRC: the same scoring as `labelaudit selftest`."""
    from labelaudit.selftest import score_issues

    issues = pd.DataFrame({"is_label_issue": found.is_label_issue,
                           "label_quality": found.label_quality})
    scores = score_issues(is_noisy, issues)
    return {k: scores[k] for k in ("precision", "recall", "f1", "auprc")}


def lever_rows(is_noisy, labels, found: Found) -> dict:
    """labelaudit's own probabilities under other cleanlab filters and rankings (no training)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.metrics import average_precision_score

    from labelaudit.audit import RANK_BY, member_votes

    pred_probs = found.extra.get("pred_probs")
    member_probs = found.extra.get("member_probs") or {}

    def flags(members, pooled, filter_by="prune_by_noise_rate"):
        """The scan's is_label_issue: the members' vote, or cleanlab's filter on `pooled`
        when there are no members."""
        return member_votes(labels, members, filter_by=filter_by)[0] if members \
            else find_label_issues(labels, pooled, filter_by=filter_by)

    rows = {}
    if pred_probs is not None:
        # What `scan --filter-by RULE` does: each member's own filter votes.
        for filter_by in ("both", "confident_learning", "prune_by_class", "low_self_confidence",
                          "low_normalized_margin"):
            variant = Found(flags(member_probs, pred_probs, filter_by), found.label_quality,
                            found.estimated_noise_rate)
            rows[f"labelaudit[filter={filter_by}]"] = score(is_noisy, variant)
        # The ranking without the training dynamics: the out-of-fold pool alone.
        rows["labelaudit[rank-without=dynamics]"] = score(is_noisy, Found(
            found.is_label_issue, get_label_quality_scores(labels, pred_probs, method=RANK_BY),
            found.estimated_noise_rate))
        for method in ("self_confidence", "confidence_weighted_entropy"):
            variant = Found(found.is_label_issue,
                            get_label_quality_scores(labels, pred_probs, method=method),
                            found.estimated_noise_rate)
            rows[f"labelaudit[rank={method}]"] = score(is_noisy, variant)
    if member_probs:
        from cleanlab.count import num_label_issues

        from labelaudit.audit import member_weights, pool_probs

        def pooled_row(pooled, members=None):
            """Scores of `pooled` as the ranking; is_label_issue by the members' vote (the
            default), or by cleanlab's filter on `pooled` itself when `members` is None."""
            return score(is_noisy, Found(flags(members, pooled),
                                         get_label_quality_scores(labels, pooled, method=RANK_BY),
                                         found.estimated_noise_rate))

        probs = list(member_probs.values())
        weights = member_weights(labels, probs)
        # The default before the members' vote: cleanlab's filter on the pooled probabilities.
        rows["labelaudit[flag=pooled-filter]"] = pooled_row(pred_probs)
        # Pooling alternatives to the default (the accuracy-weighted mean).
        logs = np.mean([np.log(np.clip(p.astype(np.float64), 1e-6, 1.0)) for p in probs], 0)
        geometric = np.exp(logs - logs.max(1, keepdims=True))
        rows["labelaudit[pool=geometric-mean]"] = pooled_row(
            geometric / geometric.sum(1, keepdims=True), member_probs)
        rows["labelaudit[pool=uniform-mean]"] = pooled_row(pool_probs(probs), member_probs)
        rows["labelaudit[pool=accuracy-squared]"] = pooled_row(
            pool_probs(probs, np.square(weights)), member_probs)
        for left_out in member_probs:
            kept = {name: p for name, p in member_probs.items() if name != left_out}
            rows[f"labelaudit[pool-without={left_out}]"] = pooled_row(
                pool_probs(list(kept.values()), member_weights(labels, list(kept.values()))),
                kept)
        # Temperature scaling of the pooled probabilities, T fitted on the out-of-fold
        # probabilities against the given labels (lowest mean log loss on a grid).
        logp = np.log(np.clip(pred_probs.astype(np.float64), 1e-7, 1.0))

        def scaled(t):
            z = logp / t
            z = np.exp(z - z.max(1, keepdims=True))
            return z / z.sum(1, keepdims=True)

        grid = np.exp(np.linspace(np.log(0.25), np.log(4.0), 41))
        nll = [-np.log(np.clip(scaled(t)[np.arange(len(labels)), labels], 1e-12, 1)).mean()
               for t in grid]
        rows["labelaudit[pool=temperature-scaled]"] = pooled_row(scaled(grid[int(np.argmin(nll))]),
                                                                 member_probs)
        # As many flags as cleanlab estimates errors, the lowest-ranked ones.
        lowest = np.zeros(len(labels), dtype=bool)
        count = int(num_label_issues(labels, pred_probs))
        lowest[np.argsort(found.label_quality, kind="stable")[:count]] = True
        rows["labelaudit[flag-lowest=num_label_issues]"] = score(
            is_noisy, Found(lowest, found.label_quality, found.estimated_noise_rate))
    for member, quality in found.extra.get("members", {}).items():
        rows[f"labelaudit[member={member}]"] = {
            "precision": np.nan, "recall": np.nan, "f1": np.nan,
            "auprc": float(average_precision_score(is_noisy, -quality))}
    return rows


def run_setting(bench: Bench, noise: float, noise_type: str, seed: int, contenders,
                *, levers: bool, save_probs: Path | None = None) -> list[dict]:
    """Inject one noise setting and run every contender on it; one row per contender."""
    from labelaudit.noise import inject_noise

    try:
        labels = inject_noise(bench.y, noise, n_classes=bench.n_classes,
                              frac_zero_noise_rates=NOISE_TYPES[noise_type], random_state=seed)
    except ValueError as exc:
        note(f"skipped {bench.name} {noise:.0%} {noise_type} seed {seed}: {exc}")
        return []
    is_noisy = labels != bench.y
    common = {"kind": bench.kind, "dataset": bench.name, "n": len(labels), "noise": noise,
              "noise_type": noise_type, "seed": seed, "injected_rate": float(is_noisy.mean())}
    rows = []
    for name in contenders:
        if name == "labelaudit+encoder" and bench.kind == "tabular":
            continue  # an encoder embeds texts and images only
        started = time.perf_counter()
        found = CONTENDERS[name](bench, labels, seed=seed)
        seconds = found.extra.get("seconds", time.perf_counter() - started)
        row = {**common, "contender": name, **score(is_noisy, found),
               "estimated_noise_rate": found.estimated_noise_rate, "seconds": seconds}
        rows.append(row)
        note(f"{bench.name:>13} {noise:.0%} {noise_type:<15} seed {seed} {name:<11} "
             f"F1 {row['f1']:.3f} AUPRC {row['auprc']:.3f} noise {row['estimated_noise_rate']:.3f}"
             f" (injected {row['injected_rate']:.3f}) {seconds:6.1f} s")
        if found.extra.get("gate"):  # which members the user's vectors let in
            row["gate"] = found.extra["gate"]
            note(f"    {found.extra['gate']}")
        if save_probs is not None and found.extra.get("pred_probs") is not None:
            save_probs.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(
                save_probs / f"{bench.name}-{noise}-{noise_type}-{seed}-{name}.npz",
                true_labels=bench.y, labels=labels, pred_probs=found.extra["pred_probs"],
                **{f"member_{k}": v for k, v in found.extra.get("member_probs", {}).items()},
                **({} if found.extra.get("dynamics") is None
                   else {"dynamics": found.extra["dynamics"]}))
        if levers and name == "labelaudit":
            for variant, scores in lever_rows(is_noisy, labels, found).items():
                rows.append({**common, "contender": variant, **scores,
                             "estimated_noise_rate": found.estimated_noise_rate,
                             "seconds": np.nan})
    return rows


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- tables -------------------------------------------------------------------------------------

SETTING = ["kind", "dataset", "n", "noise", "noise_type"]


def is_contender(name: str) -> bool:
    return name in CONTENDERS and not name.startswith("labelaudit")


def markdown_tables(runs: pd.DataFrame) -> str:
    """One table per kind (means over seeds; the best F1 and AUPRC per setting in bold)."""
    means = runs.groupby(SETTING + ["contender"], sort=False).agg(
        seeds=("seed", "nunique"), precision=("precision", "mean"), recall=("recall", "mean"),
        f1=("f1", "mean"), auprc=("auprc", "mean"), injected=("injected_rate", "mean"),
        estimated=("estimated_noise_rate", "mean"), seconds=("seconds", "mean")).reset_index()
    main = means[means["contender"].isin(list(CONTENDERS))]
    out = []
    for kind, table in main.groupby("kind", sort=False):
        out += [f"### {kind}", "",
                "| dataset | n | noise | type | contender | precision | recall | F1 | AUPRC "
                "| est. noise (injected) | time s |",
                "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for _, group in table.groupby(SETTING, sort=False):
            best_f1, best_ap = group["f1"].max(), group["auprc"].max()
            for row in group.itertuples():
                f1 = f"**{row.f1:.3f}**" if row.f1 == best_f1 else f"{row.f1:.3f}"
                ap = f"**{row.auprc:.3f}**" if row.auprc == best_ap else f"{row.auprc:.3f}"
                out.append(f"| {row.dataset} | {row.n} | {row.noise:.0%} | {row.noise_type} | "
                           f"{row.contender} | {row.precision:.3f} | {row.recall:.3f} | {f1} | "
                           f"{ap} | {row.estimated:.3f} ({row.injected:.3f}) | "
                           f"{row.seconds:.1f} |")
        out.append("")
    levers = means[~means["contender"].isin(list(CONTENDERS))]
    if len(levers):
        out += ["### levers (labelaudit's own probabilities, rescored; no retraining)", "",
                "| dataset | noise | type | variant | precision | recall | F1 | AUPRC |",
                "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |"]
        for row in levers.itertuples():
            out.append(f"| {row.dataset} | {row.noise:.0%} | {row.noise_type} | {row.contender}"
                       f" | {row.precision:.3f} | {row.recall:.3f} | {row.f1:.3f} | "
                       f"{row.auprc:.3f} |")
        out.append("")
    return "\n".join(out)


def summary_lines(runs: pd.DataFrame) -> str:
    """One line per contender, then labelaudit against the best contender of each setting."""
    main = runs[runs["contender"].isin(list(CONTENDERS))]
    means = main.groupby(SETTING + ["contender"], sort=False)[
        ["f1", "auprc", "estimated_noise_rate", "injected_rate", "seconds"]].mean().reset_index()
    n_settings = means[SETTING].drop_duplicates().shape[0]
    lines = [f"Summary over {n_settings} dataset/noise settings ({len(main)} runs):", ""]
    for name, group in means.groupby("contender", sort=False):
        wins = best_counts(means, name)
        low = group[group["injected_rate"] < 0.3]
        error = (low["estimated_noise_rate"] - low["injected_rate"]).abs()
        error_text = f"{error.mean():.3f} (max {error.max():.3f})" if len(low) else "n/a"
        lines.append(
            f"- **{name}**: mean F1 {group['f1'].mean():.3f}, mean AUPRC "
            f"{group['auprc'].mean():.3f}; best (or tied) F1 in {wins[0]}/{len(group)}, AUPRC "
            f"in {wins[1]}/{len(group)}; |estimated - injected| noise at 10-20%: {error_text};"
            f" mean time {group['seconds'].mean():.1f} s")
    ours = means[means["contender"] == "labelaudit"].set_index(SETTING)
    others = means[means["contender"].map(is_contender)].groupby(SETTING)[["f1", "auprc"]].max()
    joined = ours.join(others.add_suffix("_best"), how="inner")
    if len(joined):
        lead = (joined["f1"] - joined["f1_best"]) * 100
        lines += ["", f"Target check: labelaudit F1 >= the best contender in "
                  f"{int((joined['f1'] >= joined['f1_best'] - 1e-12).sum())}/{len(joined)} "
                  f"settings, AUPRC >= the best in "
                  f"{int((joined['auprc'] >= joined['auprc_best'] - 1e-12).sum())}/{len(joined)}; "
                  f"mean F1 lead over the best contender {lead.mean():+.1f} points "
                  f"(min {lead.min():+.1f})."]
    return "\n".join(lines)


def best_counts(means: pd.DataFrame, name: str) -> tuple[int, int]:
    wins = [0, 0]
    for _, group in means.groupby(SETTING, sort=False):
        row = group[group["contender"] == name]
        if len(row):
            wins[0] += int(row["f1"].iloc[0] >= group["f1"].max() - 1e-12)
            wins[1] += int(row["auprc"].iloc[0] >= group["auprc"].max() - 1e-12)
    return wins[0], wins[1]


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="few datasets, subsampled, one setting, one seed")
    parser.add_argument("--datasets", help=f"comma-separated, from {', '.join(DATASETS)}")
    parser.add_argument("--noise", help="comma-separated rates, default 0.1,0.2,0.4")
    parser.add_argument("--noise-types", help="comma-separated: uniform,class-dependent")
    parser.add_argument("--seeds", type=int, help=f"number of seeds (default {SEEDS})")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="run seeds FIRST..FIRST+N-1, to split a grid across processes")
    parser.add_argument("--summarize", type=Path, nargs="+", metavar="CSV",
                        help="print the tables and summary of earlier runs' CSVs (merged; "
                             "the same setting and seed in two files counts once) and exit")
    parser.add_argument("--max-samples", type=int,
                        help="stratified sample of at most N samples per dataset")
    parser.add_argument("--max-classes", type=int,
                        help="keep at most N classes (evenly spaced) per dataset")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help="comma-separated, default all")
    parser.add_argument("--levers", action="store_true",
                        help="also rescore labelaudit's probabilities with other cleanlab "
                             "filters/rankings and each member alone")
    parser.add_argument("--save-probs", type=Path, metavar="DIR",
                        help="keep labelaudit's out-of-fold probabilities (pooled and per "
                        "member) and the labels of every run in DIR, one .npz per run, to "
                        "study thresholds and pooling without retraining")
    parser.add_argument("--encoder", metavar="NAME",
                        help="also run labelaudit+encoder: the scan with --encoder NAME (its "
                             "embeddings are computed once per dataset and kept until the run "
                             "ends, so its time counts them on the first run only)")
    parser.add_argument("--encoder-cache", type=Path, metavar="DIR",
                        help="with --encoder: keep the embeddings in DIR across runs, and let "
                             "labelaudit and labelaudit+encoder share their folds there (their "
                             "times then count cache hits)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a busy machine)")
    parser.add_argument("--out", type=Path, help="CSV of every run (default "
                        "benchmarks/results/quality[-quick].csv)")
    return parser.parse_args(argv)


def split(text: str | None, cast=str) -> tuple | None:
    """'a,b' -> ('a', 'b'); None stays None (the option was not given)."""
    return tuple(cast(v) for v in text.split(",")) if text else None


def with_encoder(encoder: str, cache: Path | None = None) -> str:
    """Register the contender labelaudit+encoder, `scan --encoder ENCODER`, and name it. Its
    cache (embeddings, folds) lives in a temporary folder removed at exit; with `cache`, there,
    and labelaudit shares it, so the encoder's scan trains only its embedding members."""
    import atexit
    import shutil
    import tempfile
    from functools import partial

    from contenders import labelaudit_scan

    from labelaudit.scan import ScanSettings

    if cache is None:
        cache = tempfile.mkdtemp(prefix="quality-encoder-")
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
    else:
        CONTENDERS["labelaudit"] = partial(labelaudit_scan,
                                           settings=ScanSettings(cache_dir=str(cache)))
    CONTENDERS["labelaudit+encoder"] = partial(
        labelaudit_scan, settings=ScanSettings(encoder=encoder, cache_dir=str(cache)))
    return "labelaudit+encoder"


def chosen_contenders(args) -> tuple:
    """--contenders, checked, with labelaudit+encoder after them when --encoder is given."""
    contenders = split(args.contenders)
    if args.encoder:
        contenders += (with_encoder(args.encoder, args.encoder_cache),)
    for name in contenders:
        if name not in CONTENDERS:
            raise SystemExit(f"unknown contender {name!r}; choose from {', '.join(CONTENDERS)}")
    return contenders


def main(argv=None) -> int:
    import torch

    args = parse_args(argv)
    if args.summarize:
        runs = pd.concat([pd.read_csv(path) for path in args.summarize], ignore_index=True)
        runs = runs.drop_duplicates(SETTING + ["seed", "contender"], keep="last")
        print(markdown_tables(runs))
        print(summary_lines(runs))
        return 0
    torch.set_num_threads(args.threads)
    datasets = split(args.datasets) or (QUICK["datasets"] if args.quick else DATASETS)
    rates = split(args.noise, float) or (QUICK["noise"] if args.quick else NOISE_RATES)
    types = split(args.noise_types) or (QUICK["noise_types"] if args.quick
                                        else tuple(NOISE_TYPES))
    seeds = args.seeds or (QUICK["seeds"] if args.quick else SEEDS)
    contenders = chosen_contenders(args)
    for noise_type in types:
        if noise_type not in NOISE_TYPES:
            raise SystemExit(f"unknown noise type {noise_type!r}; use {', '.join(NOISE_TYPES)}")
    out = args.out or RESULTS / ("quality-quick.csv" if args.quick else "quality.csv")
    out.parent.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    rows = []
    for name in datasets:
        bench = load_bench(name)
        if bench is None:
            note(f"note: {name} skipped: its data is not in {SHARED} (see the issue)")
            continue
        limit = args.max_samples or (QUICK["max_samples"].get(name) if args.quick else None)
        bench = subsample(bench, limit, max_classes=args.max_classes or (
            QUICK["max_classes"].get(name) if args.quick else None))
        for noise in rates:
            for noise_type in types:
                for seed in range(args.first_seed, args.first_seed + seeds):
                    rows += run_setting(bench, noise, noise_type, seed, contenders,
                                        levers=args.levers, save_probs=args.save_probs)
                    pd.DataFrame(rows).to_csv(out, index=False)  # partial runs keep results
    if not rows:
        raise SystemExit("no runs: every dataset was skipped")
    runs = pd.DataFrame(rows)
    print(markdown_tables(runs))
    print(summary_lines(runs))
    note(f"{len(runs)} rows written to {out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
