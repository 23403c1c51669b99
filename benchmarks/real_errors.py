"""How many of the label errors people confirmed does labelaudit rank near the top? (issue 20)

Northcutt, Athalye & Mueller (2021) had five Mechanical Turk workers look at each candidate
error in ten test sets; `data/confirmed_errors.json` lists the ones they confirmed in MNIST
(15) and 20 Newsgroups (82), with provenance. This benchmark scans each whole test set as a user
holds it (MNIST as an image folder `<label>/<index:05d>.png`, 20 Newsgroups as a CSV
`id,text,label`), with default settings and `--audit always`, and counts the confirmed errors in
the top 50/100/200/500 of the ranking (issues.csv's row order: label_quality, lowest first).
Beside it, contenders a user could write in a few lines, cross-validated on labelaudit's folds
(`labelaudit.train.fold_splits`, 5 folds, seed 0) and ranked by cleanlab's normalized margin.

    R=benchmarks/real_errors.py
    nice -n 10 .venv/bin/python $R --seeds 4     # scans (seeds 0-3), contenders, the table
    nice -n 10 .venv/bin/python $R --seeds 4 --levers --candidates --subsets \\
        --out benchmarks/results/real-errors-levers.csv     # + rankings of the saved probabilities
    nice -n 10 .venv/bin/python $R --inject-text DIR/t      # 20 Newsgroups runs with injected
                                                            # errors, every member saved
    .venv/bin/python $R --injected DIR/*         # the same rankings on injected errors (AUPRC):
                                                 # these runs and quality.py --save-probs DIR/x

The datasets are read from ../shared/data (skipped with a note when absent) and written to
`--work` (default /tmp/labelaudit-real-errors), with the scans' cache; a re-run reloads the
scans from it. Each scan's out-of-fold probabilities, every member's, the training dynamics
and the labels go to `--work/<dataset>.npz`, so rankings can be compared without retraining
(`--levers`). The table goes to stdout, every row to benchmarks/results/real-errors*.csv.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
CONFIRMED = HERE / "data" / "confirmed_errors.json"
RESULTS = HERE / "results"
TOP = (50, 100, 200, 500)
GOAL = {"mnist": (100, 12), "20news": (200, 70)}  # (top k, confirmed errors in it)
SEED = 0


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the data -----------------------------------------------------------------------------------


def confirmed_errors() -> dict[str, pd.DataFrame]:
    """dataset -> its confirmed errors: index (into the test set), given_label, guessed_label."""
    document = json.loads(CONFIRMED.read_text(encoding="utf-8"))
    return {name: pd.DataFrame(entry["errors"]) for name, entry in document["datasets"].items()}


def build_mnist(work: Path) -> Path | None:
    """The MNIST test set as `work/mnist/<label>/<index:05d>.png`; None when it is absent."""
    from PIL import Image

    folder = SHARED / "mnist-test"
    images, labels = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    if not (images.is_file() and labels.is_file()):
        return None
    pixels = np.frombuffer(gzip.open(images).read(), np.uint8, offset=16).reshape(-1, 28, 28)
    y = np.frombuffer(gzip.open(labels).read(), np.uint8, offset=8)
    root = work / "mnist"
    done = root / ".complete"
    if not done.exists():
        for digit in range(10):
            (root / str(digit)).mkdir(parents=True, exist_ok=True)
        for index, (image, label) in enumerate(zip(pixels, y, strict=True)):
            Image.fromarray(image, mode="L").save(root / str(label) / f"{index:05d}.png")
        done.write_text("")
    return root


def build_20news(work: Path) -> Path | None:
    """The 20 Newsgroups test posts as `work/20news-test.csv` (id,text,label) in the order the
    label-errors study indexes them (scikit-learn's fetch_20newsgroups order); None when absent.

    The text is the whole file decoded as latin-1, as scikit-learn returns it.
    """
    folder = SHARED / "20news-test"
    archive, order = folder / "20news-bydate-test.tar.gz", \
        folder / "sklearn_test_order_index_to_filename.json"
    if not (archive.is_file() and order.is_file()):
        return None
    path = work / "20news-test.csv"
    if path.exists():
        return path
    texts = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3:
                texts[member.name] = tar.extractfile(member).read().decode("latin-1")
    names = json.loads(order.read_text(encoding="utf-8"))
    frame = pd.DataFrame({"id": np.arange(len(names)), "text": [texts[n] for n in names],
                          "label": [n.split("/")[-2] for n in names]})
    work.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def index_of(sample_id: str) -> int:
    """The test-set index a sample id names: '4/00247.png' -> 247, '247' -> 247."""
    return int(Path(str(sample_id)).stem)


# -- labelaudit ---------------------------------------------------------------------------------


def scan_settings(work: Path, seed: int = SEED):
    from labelaudit.settings import ScanSettings

    return ScanSettings(audit="always", seed=seed, cache_dir=str(work / "cache"))


def every_member(result) -> dict:
    """Every member's out-of-fold probabilities, the ones that only run (the text network)
    too, reloaded from the scan's fold cache (nothing retrains when the cache holds the folds)."""
    from labelaudit.features import make_features
    from labelaudit.progress import SILENT
    from labelaudit.scan import _plan_folds
    from labelaudit.train import network_of, out_of_fold

    ds, settings = result.dataset, result.settings
    runner = _plan_folds(ds, make_features(ds), settings, progress=SILENT)
    folds = runner.run(list(range(1, settings.cv + 1)), members=True)
    return out_of_fold(folds, ds.n_samples, ds.n_classes, network=network_of(ds.kind))


def run_labelaudit(name: str, path: Path, work: Path, seed: int = SEED) -> dict:
    """Scan `path` (or reload the scan from the cache) and save its probabilities in index
    order to work/<name>.npz (<name>-seed<seed>.npz for other seeds); returns its arrays."""
    from labelaudit.scan import scan

    saved = work / (f"{name}.npz" if seed == SEED else f"{name}-seed{seed}.npz")
    started = time.perf_counter()
    result = scan(path, scan_settings(work, seed))
    seconds = time.perf_counter() - started
    if "cached_result" in result.timings:  # the time of the scan that trained, if saved
        seconds = float(np.load(saved)["scan_seconds"]) if saved.exists() else np.nan
    ds = result.dataset
    order = np.argsort([index_of(i) for i in ds.ids])  # loaded row -> test-set index order
    issues_index = np.array([index_of(i) for i in result.issues["id"]])
    arrays = {"labels": ds.labels[order], "classes": np.array(ds.classes),
              "pred_probs": result.pred_probs[order], "ranking": issues_index,
              "label_quality": result.issues["label_quality"].to_numpy(),
              "is_label_issue": result.issues["is_label_issue"].to_numpy(dtype=bool),
              "scan_seconds": seconds}
    if result.dynamics is not None:
        arrays["dynamics"] = result.dynamics[order]
    for member, probs in every_member(result).items():
        arrays[f"member_{member}"] = np.asarray(probs)[order]
    np.savez_compressed(saved, **arrays)
    how = "from the cache" if "cached_result" in result.timings else "trained"
    timed = "not timed" if np.isnan(seconds) else f"{seconds:.0f} s"
    note(f"{name}: scan {timed} ({how}); probabilities in {saved}")
    return dict(np.load(saved))


# -- contenders ---------------------------------------------------------------------------------


def cross_validated(model, X, labels, seed: int = SEED) -> np.ndarray:
    """Out-of-fold probabilities of `model` on labelaudit's folds."""
    from sklearn.base import clone

    from labelaudit.train import fold_splits

    probs = np.zeros((len(labels), labels.max() + 1))
    for train, test in fold_splits(labels, cv=5, random_state=seed):
        fitted = clone(model).fit(X[train] if not isinstance(X, list) else [X[i] for i in train],
                                  labels[train])
        rows = X[test] if not isinstance(X, list) else [X[i] for i in test]
        probs[np.ix_(test, fitted.classes_)] = fitted.predict_proba(rows)
    return probs


def text_contenders() -> dict:
    """TF-IDF + LogisticRegression(C=10): the plain vectorizer, and the expert's (sublinear
    tf, words in at least 2 and at most 95% of posts), fitted within each fold."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def tfidf_lr(**vectorizer):
        return make_pipeline(TfidfVectorizer(**vectorizer),
                             LogisticRegression(C=10.0, max_iter=1000))

    return {"tfidf-logreg": tfidf_lr(),
            "tfidf-sublinear-logreg": tfidf_lr(sublinear_tf=True, min_df=2, max_df=0.95)}


def image_contenders() -> dict:
    """Logistic regression and 10 nearest neighbours on pixels scaled to [0, 1]."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    scale = FunctionTransformer(lambda X: X.reshape(len(X), -1).astype(np.float32) / 255)
    return {"pixels-logreg": make_pipeline(scale, LogisticRegression(C=0.1, max_iter=1000)),
            "pixels-knn": make_pipeline(scale, KNeighborsClassifier(10, weights="distance"))}


def run_contenders(name: str, path: Path, labels, work: Path) -> dict:
    """dataset -> each contender's out-of-fold probabilities and seconds, cached in work/."""
    saved = work / f"{name}-contenders.npz"
    if saved.exists():
        kept = dict(np.load(saved))
        return {k: (kept[k], float(kept[f"{k}:seconds"])) for k in kept if ":" not in k}
    if name == "20news":
        X = pd.read_csv(path)["text"].tolist()
        models = text_contenders()
    else:
        from labelaudit.data import load_dataset

        ds = load_dataset(path)
        X = ds.inputs[np.argsort([index_of(i) for i in ds.ids])]
        models = image_contenders()
    found = {}
    for contender, model in models.items():
        started = time.perf_counter()
        found[contender] = (cross_validated(model, X, labels), time.perf_counter() - started)
        note(f"{name}: {contender} {found[contender][1]:.0f} s")
    np.savez_compressed(saved, **{k: p for k, (p, _) in found.items()},
                        **{f"{k}:seconds": s for k, (_, s) in found.items()})
    return found


# -- candidate members: cheap models that could join the ensemble ---------------------------------


def text_candidates(texts) -> dict:
    """name -> (features, model): linear models on labelaudit's TF-IDF at other penalties, and
    on TF-IDF with word pairs; the vectorizers are fitted on every post, as the scan's is."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from labelaudit.features import text_features

    words = text_features(texts)
    pairs = TfidfVectorizer(sublinear_tf=True, min_df=2, max_df=0.95, ngram_range=(1, 2),
                            dtype=np.float32).fit_transform(texts).tocsr()
    return {"logreg_c100": (words, LogisticRegression(C=100.0, max_iter=2000)),
            "logreg_c1": (words, LogisticRegression(C=1.0, max_iter=1000)),
            "logreg_pairs": (pairs, LogisticRegression(C=10.0, max_iter=1000))}


def second_seed(name: str, path: Path, work: Path) -> dict:
    """The scan's members again with seed 1 (other folds and initial weights), in index order."""
    from labelaudit.scan import scan

    result = scan(path, scan_settings(work, SEED + 1))
    order = np.argsort([index_of(i) for i in result.dataset.ids])
    members = {f"{m}_seed1": np.asarray(p)[order] for m, p in every_member(result).items()}
    if result.dynamics is not None:
        members["dynamics_seed1"] = result.dynamics[order]
    return members


def network_dynamics(path: Path, work: Path, seed: int = SEED) -> dict:
    """{"mlp_dynamics": the text network's training dynamics}: the scan's folds trained again,
    each recording its training samples' probabilities over the epochs (as images and tables
    do), in index order."""
    from joblib import Parallel, delayed

    from labelaudit.data import load_dataset
    from labelaudit.features import make_features
    from labelaudit.progress import SILENT
    from labelaudit.scan import _plan_folds
    from labelaudit.train import train_fold, training_dynamics

    settings = scan_settings(work, seed)
    ds = load_dataset(path)
    X = make_features(ds)
    runner = _plan_folds(ds, X, settings, progress=SILENT)
    folds = Parallel(n_jobs=2)(
        delayed(train_fold)(X, ds.labels, train, test, fold=fold, settings=runner.model,
                            random_state=settings.seed, dynamics=True, monitor=False)
        for fold, (train, test) in enumerate(runner.splits, start=1))
    order = np.argsort([index_of(i) for i in ds.ids])
    return {"mlp_dynamics": training_dynamics(folds, ds.n_samples, ds.n_classes)[order]}


def inject_text(work: Path, out: Path, *, n: int = 800, n_classes: int = 5,
                seeds: int = 2) -> None:
    """quality.py's 20 Newsgroups sample with injected errors (10 and 20%, uniform and
    class-dependent), scanned, with every member and the text network's dynamics saved to
    out/ in quality.py's --save-probs format, for --injected."""
    from quality import NOISE_TYPES, read_20news, subsample

    from labelaudit.noise import inject_noise
    from labelaudit.scan import scan

    bench = subsample(read_20news(SHARED / "20news-test"), n, max_classes=n_classes)
    out.mkdir(parents=True, exist_ok=True)
    for noise in (0.1, 0.2):
        for noise_type, zero in NOISE_TYPES.items():
            for seed in range(seeds):
                labels = inject_noise(bench.y, noise, n_classes=bench.n_classes,
                                      frac_zero_noise_rates=zero, random_state=seed)
                path = work / "injected" / f"20news-{noise}-{noise_type}-{seed}.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                pd.DataFrame({"id": np.arange(len(labels)), "text": bench.inputs,
                              "label": np.asarray(bench.classes)[labels]}).to_csv(path,
                                                                                  index=False)
                result = scan(path, scan_settings(work, seed))
                order = np.argsort([index_of(i) for i in result.dataset.ids])
                members = {f"member_{m}": np.asarray(p)[order]
                           for m, p in every_member(result).items()}
                members["member_mlp_dynamics"] = network_dynamics(path, work, seed)["mlp_dynamics"]
                words, model = text_candidates(list(bench.inputs))["logreg_c100"]
                members["member_logreg_c100"] = cross_validated(model, words, labels, seed)
                np.savez_compressed(out / f"{path.stem}-labelaudit.npz", true_labels=bench.y,
                                    labels=labels, **members)
                note(f"injected: {path.stem} saved")


def candidate_members(name: str, path: Path, work: Path, labels) -> dict:
    """Out-of-fold probabilities of the candidate members (on labelaudit's folds), cached in
    work/<name>-candidates.npz."""
    saved = work / f"{name}-candidates.npz"
    if saved.exists():
        return dict(np.load(saved))
    if name == "20news":
        from labelaudit.data import load_dataset

        ds = load_dataset(path)
        texts = list(ds.inputs[np.argsort([index_of(i) for i in ds.ids])])
        found = {}
        for member, (X, model) in text_candidates(texts).items():
            started = time.perf_counter()
            found[member] = cross_validated(model, X, labels)
            note(f"{name}: candidate {member} {time.perf_counter() - started:.0f} s")
        found.update(network_dynamics(path, work))
    else:
        found = second_seed(name, path, work)
    np.savez_compressed(saved, **found)
    return found


# -- counting -----------------------------------------------------------------------------------


def hits(ranking, confirmed_index) -> dict:
    """Confirmed errors among the first k of `ranking` (test-set indices, most suspect first)."""
    confirmed = set(int(i) for i in confirmed_index)
    return {f"top{k}": sum(int(i) in confirmed for i in ranking[:k]) for k in TOP}


def ranked(labels, probs, method: str = "normalized_margin") -> np.ndarray:
    """Indices by cleanlab's label quality of `probs`, lowest first (ties by index)."""
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(labels, np.asarray(probs, dtype=np.float64), method=method)
    return np.argsort(quality, kind="stable")


def check_labels(name: str, labels, classes, errors: pd.DataFrame) -> None:
    """Refuse a build whose labels disagree with the study's given labels."""
    given = np.asarray(classes)[labels[errors["index"].to_numpy()]]
    wrong = errors[given != errors["given_label"].to_numpy()]
    if len(wrong):
        raise SystemExit(f"{name}: {len(wrong)} confirmed errors have another given label here "
                         f"(first: index {wrong['index'].iloc[0]}); the data's order is off")


def measure(name: str, work: Path, errors: pd.DataFrame, *, seeds: int = 1) -> list[dict]:
    """Rows of the table for one dataset: labelaudit's default, then each contender."""
    path = (build_mnist if name == "mnist" else build_20news)(work)
    if path is None:
        note(f"note: {name} skipped: its data is not in {SHARED}")
        return []
    found = run_labelaudit(name, path, work)
    labels, classes = found["labels"], found["classes"]
    check_labels(name, labels, classes, errors)
    index = errors["index"]
    common = {"dataset": name, "n": len(labels), "confirmed": len(errors)}
    rows = [{**common, "ranking": "labelaudit (default)", **hits(found["ranking"], index),
             "seconds": float(found["scan_seconds"])}]
    for seed in range(SEED + 1, SEED + seeds):  # how much the count moves with the seed alone
        again = run_labelaudit(name, path, work, seed)
        rows.append({**common, "ranking": f"labelaudit (default, seed {seed})",
                     **hits(again["ranking"], index), "seconds": float(again["scan_seconds"])})
    for contender, (probs, seconds) in run_contenders(name, path, labels, work).items():
        rows.append({**common, "ranking": f"{contender} (normalized_margin)",
                     **hits(ranked(labels, probs), index), "seconds": seconds})
    return rows


def table(rows: pd.DataFrame) -> str:
    out = ["| dataset | ranking | " + " | ".join(f"top {k}" for k in TOP) + " | time s |",
           "| --- | --- | " + " | ".join("---:" for _ in TOP) + " | ---: |"]
    for row in rows.itertuples():
        cells = " | ".join(f"{getattr(row, f'top{k}'):g}/{row.confirmed}" for k in TOP)
        seconds = "" if pd.isna(row.seconds) else f"{row.seconds:.0f}"
        out.append(f"| {row.dataset} | {row.ranking} | {cells} | {seconds} |")
    return "\n".join(out)


# -- levers: rankings of the saved probabilities, nothing retrains --------------------------------


def temperature_scaled(labels, probs) -> np.ndarray:
    """`probs` sharpened or flattened by the temperature that fits the given labels best (lowest
    mean log loss on a grid): members as sure as kNN's votes and as unsure as a linear model's
    then weigh alike in a pool."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-6, 1.0))

    def scaled(t):
        z = np.exp((logp - logp.max(1, keepdims=True)) / t)
        return z / z.sum(1, keepdims=True)

    grid = np.exp(np.linspace(np.log(0.1), np.log(10.0), 47))
    loss = [-np.log(scaled(t)[np.arange(len(labels)), labels]).mean() for t in grid]
    return scaled(grid[int(np.argmin(loss))])


def log_pool(members, weights) -> np.ndarray:
    """The weighted geometric mean of the members' probabilities, renormalised."""
    logs = np.average([np.log(np.clip(np.asarray(p, np.float64), 1e-6, 1.0)) for p in members],
                      axis=0, weights=weights)
    pooled = np.exp(logs - logs.max(1, keepdims=True))
    return pooled / pooled.sum(1, keepdims=True)


def member_weights(labels, members: list, weighting: str) -> list[float]:
    """The members' pooling weights: labelaudit's (their accuracy on the given labels),
    uniform, or the inverse of their error rate (a member half as often wrong counts twice)."""
    from labelaudit.audit import member_weights as accuracy

    if weighting == "uniform":
        return [1.0] * len(members)
    acc = np.array(accuracy(labels, members))
    if weighting == "inverse-error":
        return list(1.0 / np.maximum(1.0 - acc, 1.0 / len(labels)))
    return list(acc)


def quality_of(labels, members: dict, *, pooling: str = "mean", weighting: str = "accuracy",
               method: str = "normalized_margin", calibrated: bool = False,
               dynamics_share: float | None = None):
    """Label quality (low: suspect) of the members' probabilities (name -> array) pooled by
    `pooling` with `weighting`, each member temperature-scaled first when `calibrated`.

    With `dynamics_share`, the training dynamics (in-sample members, named *dynamics*) are
    pooled apart and given that share of the pool, the held-out members the rest.
    """
    from cleanlab.rank import get_label_quality_ensemble_scores, get_label_quality_scores

    from labelaudit.audit import pool_probs

    probs = {name: np.asarray(p, np.float64) for name, p in members.items()}
    if calibrated:
        probs = {name: temperature_scaled(labels, p) for name, p in probs.items()}
    if dynamics_share is not None:
        inside = [p for name, p in probs.items() if "dynamics" in name]
        held = [p for name, p in probs.items() if "dynamics" not in name]
        if inside and held:
            probs = {"held-out": pool_probs(held, member_weights(labels, held, weighting)),
                     "dynamics": pool_probs(inside)}
            pooling, weighting = "mean", "share"
    members = list(probs.values())
    weights = [1 - dynamics_share, dynamics_share] if weighting == "share" \
        else member_weights(labels, members, weighting)
    if pooling == "rank-mean":  # each member's ranking as a quantile, then their mean
        ranks = [pd.Series(get_label_quality_scores(labels, p, method=method)).rank(pct=True)
                 for p in members]
        return np.average(ranks, axis=0, weights=weights)
    if pooling == "cleanlab-ensemble":  # the members' scores averaged, not their probabilities
        return get_label_quality_ensemble_scores(
            labels, members, method=method, weight_ensemble_members_by="custom",
            custom_weights=np.asarray(weights), verbose=False)
    pooled = log_pool(members, weights) if pooling == "log-mean" else pool_probs(members, weights)
    return get_label_quality_scores(labels, np.asarray(pooled, np.float64), method=method)


POOLINGS = ("mean", "log-mean", "rank-mean", "cleanlab-ensemble")
WEIGHTINGS = ("accuracy", "uniform", "inverse-error")
METHODS = ("normalized_margin", "self_confidence", "confidence_weighted_entropy")
SHORT = {"normalized_margin": "NM", "self_confidence": "SC",
         "confidence_weighted_entropy": "CWE"}


def default_rankers(kind: str, members: dict) -> list[str]:
    """The members that rank by default for `kind` (labelaudit.train.ENSEMBLE), as saved."""
    from labelaudit.train import RANK, members_with

    return [m for m in members_with(RANK, kind, 0) if m in members]


def variants(kind: str, members: dict) -> list[tuple[str, list, dict]]:
    """(name, member names, quality_of's options) of every ranking to compare: the default's
    pooling, weighting and scoring varied, members left out and added, each member alone."""
    rankers = default_rankers(kind, members)
    out = []
    for pooling in POOLINGS:
        for weighting in WEIGHTINGS:
            for calibrated in (False, True):
                for method in METHODS:
                    name = (f"{pooling}, {weighting} weights{', calibrated' * calibrated}, "
                            f"{SHORT[method]}")
                    out.append((name, rankers, dict(pooling=pooling, weighting=weighting,
                                                    calibrated=calibrated, method=method)))
    for share in (0.25, 0.5, 0.75):
        for weighting in ("accuracy", "inverse-error"):
            out.append((f"dynamics {share:.0%} of the pool, held-out by {weighting} weights",
                        rankers, dict(weighting=weighting, dynamics_share=share)))
    network = next(iter(members))
    for dynamics in (m for m in members if "dynamics" in m and m not in rankers):
        for share in (0.25, 0.5, 0.75):
            for weighting in ("accuracy", "inverse-error"):
                out += [(f"with {network} and {dynamics} {share:.0%} of the pool, held-out "
                         f"by {weighting} weights", [*rankers, network, dynamics],
                         dict(weighting=weighting, dynamics_share=share))]
    for weighting in ("accuracy", "inverse-error"):
        out += [(f"without {m}, {weighting} weights", [r for r in rankers if r != m],
                 dict(weighting=weighting)) for m in rankers]
        out += [(f"with {m}, {weighting} weights", [*rankers, m], dict(weighting=weighting))
                for m in members if m not in rankers]
    out += [(f"{m} alone, {SHORT[method]}", [m], dict(method=method)) for m in members
            for method in ("normalized_margin", "self_confidence")]
    return out


def subset_search(labels, members: dict, errors, k: int, **options):
    """Every subset of the members, pooled as `options` say, scored by the hits in the top k: an
    upper bound of what choosing members could give here (it fits the 97 confirmed errors)."""
    from itertools import combinations

    names = list(members)
    found = []
    for size in range(1, len(names) + 1):
        for subset in combinations(names, size):
            quality = quality_of(labels, {m: members[m] for m in subset}, **options)
            found.append((hits(np.argsort(quality, kind="stable"), errors)[f"top{k}"],
                          "+".join(subset)))
    return sorted(found, reverse=True)


def saved_members(saved: dict) -> dict:
    """name -> probabilities of every member in a saved scan (or quality.py run), the training
    dynamics included."""
    members = {k.removeprefix("member_"): v for k, v in saved.items() if k.startswith("member_")}
    if "dynamics" in saved:
        members["dynamics"] = saved["dynamics"]
    return members


def lever_rows(name: str, saved: dict, errors: pd.DataFrame, *, extra: dict) -> list[dict]:
    """Every variant's hits on one saved scan of a dataset (and `extra` members)."""
    labels = saved["labels"]
    kind = "images" if name == "mnist" else "text"
    members = {**saved_members(saved), **extra}
    common = {"dataset": name, "n": len(labels), "confirmed": len(errors), "seconds": np.nan}
    rows = []
    for variant, subset, options in variants(kind, members):
        quality = quality_of(labels, {m: members[m] for m in subset}, **options)
        rows.append({**common, "ranking": variant,
                     **hits(np.argsort(quality, kind="stable"), errors["index"])})
    return rows


def injected_rows(folders: list[Path]) -> list[dict]:
    """AUPRC of every variant on the runs quality.py saved with --save-probs (known injected
    errors): whether a ranking that finds more confirmed errors also finds injected ones."""
    from sklearn.metrics import average_precision_score

    rows = []
    for path in sorted(p for folder in folders for p in folder.glob("*-labelaudit.npz")):
        saved = dict(np.load(path))
        labels, is_noisy = saved["labels"], saved["labels"] != saved["true_labels"]
        dataset = path.name.split("-0.")[0]
        kind = {"mnist": "images", "digits": "images", "20news": "text"}.get(dataset, "tabular")
        members = saved_members(saved)
        run = f"{path.parent.name}/{path.name.removesuffix('-labelaudit.npz')}"
        for variant, subset, options in variants(kind, members):
            quality = quality_of(labels, {m: members[m] for m in subset}, **options)
            rows.append({"run": run, "dataset": dataset, "kind": kind, "ranking": variant,
                         "auprc": float(average_precision_score(is_noisy, -quality))})
    return rows


DEFAULT_RANKING = "mean, accuracy weights, NM"  # labelaudit's: its variant in `variants`


def injected_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean AUPRC per kind of data and overall, and in how many runs each ranking beats the
    default's (or loses to it)."""
    means = frame.groupby(["ranking", "kind"], sort=False)["auprc"].mean().unstack(1)
    default = frame[frame["ranking"] == DEFAULT_RANKING].set_index("run")["auprc"]
    delta = frame["auprc"] - frame["run"].map(default)
    by = frame["ranking"]
    return means.assign(mean=frame.groupby(by, sort=False)["auprc"].mean(),
                        better=(delta > 1e-9).groupby(by, sort=False).sum(),
                        worse=(delta < -1e-9).groupby(by, sort=False).sum()).round(4)


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/labelaudit-real-errors"),
                        help="folder for the built datasets, the scans' cache and the .npz")
    parser.add_argument("--datasets", default="mnist,20news", help="comma-separated")
    parser.add_argument("--seeds", type=int, default=1,
                        help="scan with seeds 0..N-1: how much the counts move with the seed")
    parser.add_argument("--levers", action="store_true",
                        help="also rank the saved probabilities in other ways (no training)")
    parser.add_argument("--candidates", action="store_true",
                        help="with --levers: train the candidate members too (text: linear "
                             "models on other features; images: a second scan with seed 1)")
    parser.add_argument("--subsets", action="store_true",
                        help="with --levers: the best member subsets (fits the confirmed set)")
    parser.add_argument("--injected", type=Path, nargs="+", metavar="DIR",
                        help="score the rankings on quality.py --save-probs DIR runs and exit")
    parser.add_argument("--inject-text", type=Path, metavar="DIR",
                        help="save 20 Newsgroups runs with injected errors, every member and "
                             "the text network's dynamics included, to DIR (for --injected)")
    parser.add_argument("--out", type=Path, default=RESULTS / "real-errors.csv")
    return parser.parse_args(argv)


def levers(name: str, work: Path, errors: pd.DataFrame, *, seeds: int, candidates: bool,
           subsets: bool) -> list[dict]:
    """The lever rows of one dataset, on each of the `seeds` scans `measure` saved (the
    candidates and contenders join seed 0's scan only), then their means over the seeds."""
    path = work / ("mnist" if name == "mnist" else "20news-test.csv")
    saved = dict(np.load(work / f"{name}.npz"))
    extra = {k: p for k, (p, _) in run_contenders(name, path, saved["labels"], work).items()}
    if candidates:
        extra.update(candidate_members(name, path, work, saved["labels"]))
    rows = [{**row, "seed": SEED} for row in lever_rows(name, saved, errors, extra=extra)]
    others = [work / f"{name}-seed{seed}.npz" for seed in range(SEED + 1, SEED + seeds)]
    for seed, other in enumerate(others, start=SEED + 1):
        rows += [{**row, "seed": seed} for row in lever_rows(name, dict(np.load(other)), errors,
                                                               extra={})]
    if others:  # the mean over the seeds, of the variants every seed has
        frame = pd.DataFrame(rows)
        every = frame.groupby("ranking")["seed"].transform("nunique") == len(others) + 1
        means = frame[every].groupby("ranking", sort=False)[[f"top{k}" for k in TOP]].mean()
        rows += [{"dataset": name, "n": len(saved["labels"]), "confirmed": len(errors),
                  "ranking": f"{ranking} (mean of {len(others) + 1} seeds)", "seed": np.nan,
                  "seconds": np.nan, **counts} for ranking, counts in means.iterrows()]
    if subsets:
        members = {**saved_members(saved), **extra}
        k = GOAL[name][0]
        for weighting in ("accuracy", "inverse-error"):
            for count, subset in subset_search(saved["labels"], members, errors["index"], k,
                                               weighting=weighting)[:5]:
                note(f"{name}: {count} in the top {k}: {subset}, {weighting} weights")
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.inject_text:
        inject_text(args.work, args.inject_text)
        return 0
    if args.injected:
        frame = pd.DataFrame(injected_rows(args.injected))
        out = args.out.with_name(args.out.stem + "-injected.csv.gz")
        frame.to_csv(out, index=False)
        print(injected_summary(frame).to_string())
        note(f"{len(frame)} rows written to {out}")
        return 0
    errors = confirmed_errors()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.datasets.split(","):
        found = measure(name, args.work, errors[name], seeds=args.seeds)
        rows += found
        if found and args.levers:
            rows += levers(name, args.work, errors[name], seeds=args.seeds,
                           candidates=args.candidates, subsets=args.subsets)
    if not rows:
        note("no dataset was found: nothing measured")
        return 0
    frame = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(table(frame))
    note(f"{len(frame)} rows written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
