"""How often does the steep-climb verdict fire, on clean data and with injected label noise?

Every run is a real `labelaudit.scan.scan(path, ScanSettings(audit="never", seed=seed))` on a
dataset written to a temporary folder: the scan's own loading, features, model defaults and
monitor fold(s), then its gap diagnosis. Datasets are built from scikit-learn's bundled data (the
demo datasets' sources, digits as images and as a table, wine, breast cancer, iris), clean and with
label noise injected by `labelaudit.noise.inject_noise` (cleanlab's noise generation) with the
run's seed. `mnist-1000` and `mnist-3000` are 28x28 images, a seeded sample of the MNIST test set
in ../shared/data/mnist-test (skipped, with a note, when it is absent), `mnist-10000` all of it:
images above 16 pixels, which the audit's network trains on random shifts and the monitor
watches without them (on a subsample of 3,000 above that many).

--curve is issue 18's detection curve: the share of runs whose verdict starts the audit under
`--audit auto`, per kind of data, at 0-20% wrong labels made wrong at exactly the rate, uniformly
and class-dependently (`flip_labels`), on CURVE_DATASETS: tables of 150 to 100,000 rows (numeric
and mixed; generated ones with flip_y=0, so clean means clean), images of 8 to 32 pixels (drawn
shapes with and without jitter, digits, MNIST) and 20 Newsgroups posts, on seeds from
CURVE_FIRST_SEED on, after the ones its per-sample rule was set on.

    python benchmarks/gap_calibration.py                 # the full table (CPU-heavy)
    python benchmarks/gap_calibration.py --curve --seeds 5 --runs runs.csv --histories h.csv.gz
    python benchmarks/gap_calibration.py --curve --from-histories h.csv.gz  # re-read, no training
    python benchmarks/gap_calibration.py --quick         # two small tables, one seed
    python benchmarks/gap_calibration.py --histories curves.csv.gz  # also keep every curve
    python benchmarks/gap_calibration.py --from-histories curves.csv.gz  # re-diagnose only
    python benchmarks/gap_calibration.py --curve --datasets overlap-0.8 overlap-1.2 --noise 0 0.05
        # clean tables whose classes overlap (OVERLAP_SEPS): where clean labels look wrong

The table goes to stdout as markdown; progress goes to stderr. Target: steep-climb fires on at
least 95% of runs with 10% noise or more and on at most 5% of clean runs.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

NOISE_RATES = (0.0, 0.05, 0.10, 0.20, 0.40)
SEEDS = 5
# --curve: the detection curve (share of runs whose verdict starts the audit under --audit auto)
# per kind of data, at low noise too, on seeds after the calibration's 0-4 by default.
CURVE_NOISE = (0.0, 0.01, 0.02, 0.05, 0.10, 0.20)
CURVE_DATASETS = ("iris", "wine", "breast-cancer", "digits-table", "blobs-3000", "mixed-2000",
                  "digits-images", "shapes-16", "shapes-32-jitter", "mnist-1000", "20news-800",
                  "20news-2000", "mnist-3000", "blobs-100k")
# The per-sample rules (gap.WRONG_LABELS, gap.HELD_OUT_EXCESS, gap.CONTRADICTED) were set on
# seeds 5-14 and read once on 15-23; a fresh check of the frozen rules starts past all of them.
CURVE_FIRST_SEED = 24
# --curve injects exactly the rate, both ways (flip_labels); the calibration drew cleanlab's.
CURVE_MODES = ("uniform", "class")
# Clean tables whose classes overlap more and more (make_classification's class_sep; the
# blobs use 1.6): where clean labels stop being decided by the features.
OVERLAP_SEPS = ("0.6", "0.8", "1.0", "1.2", "1.4")
KIND = {"iris": "tables", "wine": "tables", "breast-cancer": "tables", "digits-table": "tables",
        "blobs-3000": "tables", "mixed-2000": "tables", "blobs-100k": "tables",
        "digits-images": "images", "shapes-16": "images", "shapes-32-jitter": "images",
        "mnist-1000": "images", "mnist-3000": "images", "mnist-10000": "images",
        "20news-800": "text", "20news-2000": "text",
        **{f"overlap-{sep}": "tables" for sep in OVERLAP_SEPS},
        "checker-4": "tables", "checker-8": "tables", "checker-12": "tables"}
# Real collections with label errors of their own (the MNIST test set's 15 confirmed, 20
# Newsgroups' 82): unflipped, they are not clean data in issue 18's sense.
REAL = ("mnist-1000", "mnist-3000", "mnist-10000", "20news-800", "20news-2000")
# Cheapest first; seeds are the outer loop, so an interrupted run still covers every cell.
DATASETS = ("iris", "wine", "breast-cancer", "digits-table", "digits-images", "mnist-1000",
            "mnist-3000", "mnist-10000", "20news-800", "blobs-3000", "mixed-2000", "shapes-16",
            "shapes-32-jitter", "20news-2000", "blobs-100k")
OVERLAP = tuple(f"overlap-{sep}" for sep in OVERLAP_SEPS)  # by --datasets only
CHECKERS = ("checker-4", "checker-8", "checker-12")  # by --datasets only
MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-test"
TWENTY_NEWS = MNIST.parent / "20news-test"
N_CLASSES = {"iris": 3, "wine": 3, "breast-cancer": 2, "digits-table": 10, "digits-images": 10,
             "mnist-1000": 10, "mnist-3000": 10, "mnist-10000": 10, "20news-800": 5,
             "blobs-3000": 4, "mixed-2000": 4, "blobs-100k": 4, "shapes-16": 5,
             "shapes-32-jitter": 5, "20news-2000": 10,
             **{f"overlap-{sep}": 4 for sep in OVERLAP_SEPS},
             "checker-4": 2, "checker-8": 2, "checker-12": 2}
SHAPES = ("circle", "square", "triangle", "cross", "ring")
QUICK = {"datasets": ("iris", "wine"), "noise": (0.0, 0.20), "seeds": 1}


def _bunch(name: str):
    from sklearn import datasets

    loader = {"digits-images": datasets.load_digits, "digits-table": datasets.load_digits,
              "wine": datasets.load_wine, "breast-cancer": datasets.load_breast_cancer,
              "iris": datasets.load_iris}[name]
    return loader()


@functools.cache
def _mnist_test():
    """The MNIST test set, read once (quality.py's reader of the original idx files)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quality import read_mnist

    bench = read_mnist(MNIST)
    return bench.inputs[:, 0], bench.y


def _mnist(name: str, seed: int):
    """(images, labels): `mnist-N` is a sample of N test images drawn with the run's seed."""
    images, labels = _mnist_test()
    keep = np.sort(np.random.default_rng(seed).choice(len(labels), int(name.split("-")[1]),
                                                      replace=False))
    return images[keep], labels[keep]


@functools.cache
def _twenty_news(n: int = 800, groups: int = 5):
    """(texts, labels): `n` posts of `groups` groups (800 of 5: the quality grid's sample)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quality import read_20news, subsample

    bench = subsample(read_20news(TWENTY_NEWS), n, max_classes=groups, seed=0)
    return bench.inputs, bench.y


def _blobs(n: int, seed: int, *, mixed: bool = False, class_sep: float = 1.6):
    """(table, labels): scikit-learn's make_classification with flip_y=0, so no label is wrong;
    `mixed` turns two informative features into categories (one ordinal, one unordered); a
    smaller `class_sep` makes the classes overlap (clean labels that features do not decide)."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=20, n_informative=10, n_redundant=4,
                               n_classes=4, class_sep=class_sep, flip_y=0.0,
                               random_state=seed)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    if mixed:
        frame["grade"] = pd.cut(frame.pop("x0"), [-np.inf, -1, 0, 1, np.inf],
                                labels=list("DCBA")).astype(str)
        frame["colour"] = np.array(["red", "green", "blue", "grey", "pink", "teal"])[
            np.clip(np.floor(frame.pop("x1") + 3), 0, 5).astype(int)]
    return frame, y


def _checker(cells: int, seed: int, n: int = 3000):
    """(table, labels): points on the unit square, labelled by the colour of their cell on a
    `cells` x `cells` checkerboard: clean labels that a small network cannot fit when the board
    is fine (an underfitting model that is merely too weak)."""
    xy = np.random.default_rng(seed).uniform(0, 1, (n, 2))
    y = (np.floor(xy * cells).sum(axis=1) % 2).astype(int)
    return pd.DataFrame(xy, columns=["x", "y"]), y


def _shapes(size: int, seed: int, *, jitter: bool, n: int = 1000):
    """(images, labels): `n` white shapes (SHAPES) drawn on black, no pixel noise; with
    `jitter`, each at a random place and size, else centred at one size."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(SHAPES)
    images = np.empty((n, size, size), dtype=np.uint8)
    for i, label in enumerate(y):
        radius = size * (rng.uniform(0.2, 0.4) if jitter else 0.3)
        cx, cy = (rng.uniform(radius, size - radius, 2) if jitter else (size / 2, size / 2))
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        image = Image.new("L", (size, size))
        draw = ImageDraw.Draw(image)
        width = max(1, round(size / 10))
        shape = SHAPES[label]
        if shape == "circle":
            draw.ellipse(box, fill=255)
        elif shape == "ring":
            draw.ellipse(box, outline=255, width=width)
        elif shape == "square":
            draw.rectangle(box, fill=255)
        elif shape == "triangle":
            draw.polygon([(cx, cy - radius), (cx - radius, cy + radius),
                          (cx + radius, cy + radius)], fill=255)
        else:
            draw.line([(cx - radius, cy), (cx + radius, cy)], fill=255, width=width)
            draw.line([(cx, cy - radius), (cx, cy + radius)], fill=255, width=width)
        images[i] = np.asarray(image)
    return images, y


def source(name: str, seed: int):
    """(inputs, clean labels) of dataset `name`: a table (DataFrame), images (uint8 array of
    shape (n, height, width)) or texts, as its kind says. Generated data are drawn with `seed`."""
    if name.startswith("mnist"):
        return _mnist(name, seed)
    if name.startswith("20news"):
        n = int(name.split("-")[1])
        return _twenty_news(n, 5 if n <= 800 else 10)
    if name.startswith("checker"):  # checker-<cells>: 3,000 rows
        return _checker(int(name.split("-")[1]), seed)
    if name.startswith("overlap"):  # overlap-<class_sep>: 2,000 rows
        return _blobs(2000, seed, class_sep=float(name.split("-")[1]))
    if name.startswith(("blobs", "mixed")):
        n = int(name.split("-")[1].replace("k", "000"))
        return _blobs(n, seed, mixed=name.startswith("mixed"))
    if name.startswith("shapes"):
        return _shapes(int(name.split("-")[1]), seed, jitter=name.endswith("jitter"))
    bunch = _bunch(name)
    if name == "digits-images":
        return np.round(bunch.images * (255 / 16)).astype(np.uint8), bunch.target
    return pd.DataFrame(bunch.data, columns=[f"x{j}" for j in range(bunch.data.shape[1])]), \
        bunch.target


def write_dataset(name: str, inputs, labels: np.ndarray, folder: Path) -> Path:
    """Write dataset `name` with the given (possibly noisy) labels; return the path to scan."""
    from PIL import Image

    names = np.asarray([f"c{v}" for v in range(N_CLASSES[name])], dtype=object)
    if KIND[name] == "text":
        path = folder / f"{name}.csv"
        pd.DataFrame({"text": inputs, "label": names[labels]}).to_csv(path, index=False)
        return path
    if KIND[name] == "images":
        root = folder / name
        for i, (image, label) in enumerate(zip(inputs, labels, strict=True)):
            (root / names[label]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, mode="L").save(root / names[label] / f"i{i:05d}.png")
        return root
    frame = inputs.copy()
    frame.insert(0, "sample_id", [f"s{i:06d}" for i in range(len(labels))])
    frame["label"] = names[labels]
    if len(frame) > 20_000:  # Parquet keeps the big table's writing and reading quick
        path = folder / f"{name}.parquet"
        frame.to_parquet(path, index=False)
    else:
        path = folder / f"{name}.csv"
        frame.to_csv(path, index=False)
    return path


def flip_labels(y: np.ndarray, rate: float, mode: str, seed: int) -> np.ndarray:
    """Exactly round(rate * n) labels made wrong. `uniform`: each to a class drawn uniformly
    from the others; `class`: cleanlab's class-conditional noise matrix with half of its
    off-diagonal rates zero, so the errors concentrate on a few class pairs."""
    from labelaudit.noise import inject_noise

    if rate <= 0:
        return y.copy()
    if mode == "class":
        return inject_noise(y, rate, frac_zero_noise_rates=0.5, random_state=seed, exact=True)
    rng = np.random.default_rng(seed)
    k = int(y.max()) + 1
    noisy = y.copy()
    flip = rng.choice(len(y), round(rate * len(y)), replace=False)
    noisy[flip] = (y[flip] + rng.integers(1, k, len(flip))) % k
    return noisy


def run_one(name: str, noise: float, seed: int, settings, *,
            mode: str = "cleanlab") -> tuple[dict, pd.DataFrame]:
    """One scan of one dataset at one noise rate and seed: its verdict and loss history.
    `mode`: cleanlab's noise generation as the calibration drew it (about `noise` wrong), or
    exactly `noise` wrong, `uniform` or `class`-dependent (see `flip_labels`)."""
    from labelaudit.noise import inject_noise
    from labelaudit.scan import scan

    inputs, y = source(name, seed)
    noisy = (inject_noise(y, noise, random_state=seed) if mode == "cleanlab"
             else flip_labels(y, noise, mode, seed))
    with tempfile.TemporaryDirectory(prefix="gapcal-") as tmp:
        path = write_dataset(name, inputs, noisy, Path(tmp))
        started = time.perf_counter()
        result = scan(path, replace(settings, audit="never", seed=seed))
    verdict = result.verdict
    row = {"dataset": name, "kind": KIND[name], "n": len(y), "noise": noise, "mode": mode,
           "seed": seed, "actual_noise": float((noisy != y).mean()),
           "regime": verdict.regime, "steep": verdict.steep, "growth": verdict.growth,
           "train_at_best": getattr(verdict, "train_at_best", None),
           "scanned_kind": result.dataset.kind, "seconds": time.perf_counter() - started}
    history = result.history.assign(dataset=name, noise=noise, seed=seed, mode=mode)
    return row, history


def rediagnose(histories: pd.DataFrame, *, label_curves: bool = True) -> pd.DataFrame:
    """Re-run the current gap rule on saved loss curves (for tuning without retraining).

    Without `label_curves` the per-sample columns are dropped: the loss rules alone, as
    `labelaudit gap` reads a user's log, on the very same curves.
    """
    from labelaudit.gap import LABEL_COLUMNS, diagnose

    if not label_curves:
        histories = histories.drop(columns=list(LABEL_COLUMNS), errors="ignore")
    rows = []
    keys = [k for k in ("dataset", "noise", "mode", "seed") if k in histories]
    for key, part in histories.groupby(keys, sort=False):
        name, noise, seed = key[0], key[1], key[-1]
        verdict = diagnose(part[["fold", "epoch", "train_loss", "val_loss",
                                 *(c for c in LABEL_COLUMNS if c in part)]],
                           n_classes=N_CLASSES.get(name))
        rows.append({"dataset": name, "kind": KIND.get(name),
                     "n": _size(name) if name in KIND else None, "noise": noise,
                     "mode": key[2] if len(keys) == 4 else "cleanlab", "seed": seed,
                     "actual_noise": noise, "regime": verdict.regime, "steep": verdict.steep,
                     "growth": verdict.growth})
    return pd.DataFrame(rows)


@functools.cache
def _size(name: str) -> int:
    return len(source(name, 0)[1])


def markdown_table(runs: pd.DataFrame) -> str:
    """Steep-climb firing rate per dataset (rows) and noise rate (columns), as markdown."""
    rates = sorted(runs["noise"].unique())
    header = "| dataset | " + " | ".join(f"{r:.0%} noise" for r in rates) + " |"
    lines = [header, "|---" * (len(rates) + 1) + "|"]

    def cell(part):
        if part.empty:
            return "n/a"
        return f"{part['steep'].mean():.0%} ({int(part['steep'].sum())}/{len(part)})"

    for name in dict.fromkeys(runs["dataset"]):
        part = runs[runs["dataset"] == name]
        lines.append(f"| {name} | " + " | ".join(cell(part[part["noise"] == r]) for r in rates)
                     + " |")
    lines.append("| **all** | " + " | ".join(f"**{cell(runs[runs['noise'] == r])}**"
                                              for r in rates) + " |")
    clean = runs[runs["noise"] == 0]
    noisy = runs[runs["noise"] >= 0.10]

    def target(part, ok, goal):
        if part.empty:
            return "n/a"
        rate = part["steep"].mean()
        return (f"{rate:.1%} ({int(part['steep'].sum())}/{len(part)}); target {goal}: "
                + ("met" if ok(rate) else "**not met**"))

    lines += ["", "- clean runs where steep-climb fired: "
              + target(clean, lambda r: r <= 0.05, "at most 5%"),
              "- runs with 10% noise or more where it fired: "
              + target(noisy, lambda r: r >= 0.95, "at least 95%")]
    regimes = runs.groupby(["noise", "regime"]).size().unstack(fill_value=0)
    lines += ["", "Verdicts by noise rate:", "",
              "| noise | " + " | ".join(regimes.columns) + " |",
              "|---" * (len(regimes.columns) + 1) + "|"]
    lines += [f"| {r:.0%} | " + " | ".join(str(v) for v in regimes.loc[r]) + " |"
              for r in regimes.index]
    return "\n".join(lines)


def detection_table(runs: pd.DataFrame) -> str:
    """The detection curve: share of runs whose verdict starts the audit (steep), per kind of
    data (rows) and noise rate (columns), as markdown, with the targets at 0% and 5% or more."""
    rates = sorted(runs["noise"].unique())
    lines = ["| kind (datasets) | " + " | ".join(f"{r:.0%}" for r in rates) + " |",
             "|---" * (len(rates) + 1) + "|"]

    def cell(part):
        return "n/a" if part.empty else f"{int(part['steep'].sum())}/{len(part)}"

    for kind, part in runs.groupby("kind", sort=True):
        names = ", ".join(dict.fromkeys(part["dataset"]))
        lines.append(f"| {kind} ({names}) | " + " | ".join(
            cell(part[part["noise"] == r]) for r in rates) + " |")
    lines.append("| **all** | " + " | ".join(f"**{cell(runs[runs['noise'] == r])}**"
                                              for r in rates) + " |")
    # The nominal rate: 5% of breast cancer's 569 rows is 28 flips, 4.92%.
    clean, noisy = runs[runs["noise"] == 0], runs[runs["noise"] >= 0.05]
    lines += ["", f"- clean runs that start the audit: {cell(clean)} (target at most 5%)",
              f"- runs with at least 5% of labels wrong that start it: "
              f"{cell(noisy)} (target at least 95%)"]
    made = clean[~clean["dataset"].isin(REAL)]
    if len(made) < len(clean):
        lines.insert(-1, f"- of them on generated, bundled or drawn data (not {', '.join(REAL)}, "
                         f"real sets with wrong labels of their own): {cell(made)}")
    at5 = runs[runs["noise"] == 0.05]
    if not at5.empty:
        lines += ["", "At 5% wrong labels, per dataset and noise (uniform / class-dependent):", "",
                  "| dataset | samples | clean | uniform | class |", "|---|---|---|---|---|"]
        for name, part in runs.groupby("dataset", sort=False):
            five = part[part["noise"] == 0.05]
            lines.append(f"| {name} | {part['n'].iloc[0]} | {cell(part[part['noise'] == 0])} | "
                         f"{cell(five[five['mode'] == 'uniform'])} | "
                         f"{cell(five[five['mode'] == 'class'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="iris and wine, clean and 20%% noise, one seed (a smoke test)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS + OVERLAP + CHECKERS,
                        default=None)
    parser.add_argument("--noise", nargs="+", type=float, default=None)
    parser.add_argument("--seeds", type=int, default=None, help=f"seeds per cell (default {SEEDS})")
    parser.add_argument("--first-seed", type=int, default=None,
                        help=f"first seed (default 0; {CURVE_FIRST_SEED} with --curve)")
    parser.add_argument("--curve", action="store_true",
                        help="the detection curve per kind of data at "
                             f"{', '.join(f'{r:.0%}' for r in CURVE_NOISE)} noise on "
                             f"{', '.join(CURVE_DATASETS)} (unless --datasets/--noise say)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override ScanSettings' epochs (only to try the script quickly)")
    parser.add_argument("--histories", type=Path,
                        help="write every run's loss curves here (.csv or .csv.gz)")
    parser.add_argument("--runs", type=Path, help="write one row per run here (csv)")
    parser.add_argument("--from-histories", type=Path, nargs="+",
                        help="re-diagnose curves saved with --histories instead of training "
                             "(with --curve: as a detection curve)")
    parser.add_argument("--loss-rules-only", action="store_true",
                        help="with --from-histories: ignore the per-sample curves (train_error, "
                             "val_flagged) and read the losses alone")
    parser.add_argument("--from-runs", type=Path, nargs="+",
                        help="print the detection curve of --curve runs saved with --runs "
                             "(several files: runs made in parallel)")
    args = parser.parse_args(argv)
    if args.from_runs:
        print(detection_table(pd.concat(map(pd.read_csv, args.from_runs))))
        return 0

    if args.from_histories:
        runs = rediagnose(pd.concat(map(pd.read_csv, args.from_histories)),
                          label_curves=not args.loss_rules_only)
        print(detection_table(runs) if args.curve else markdown_table(runs))
        return 0

    from labelaudit.scan import ScanSettings

    quick = QUICK if args.quick else {}
    if args.curve:
        quick = {"datasets": CURVE_DATASETS, "noise": CURVE_NOISE, "seeds": 2}
    first_seed = args.first_seed if args.first_seed is not None else (
        CURVE_FIRST_SEED if args.curve else 0)
    datasets = args.datasets or quick.get("datasets", DATASETS)
    if not MNIST.exists() and any(name.startswith("mnist") for name in datasets):
        print(f"note: the MNIST datasets are skipped: {MNIST} is absent", file=sys.stderr)
        datasets = [name for name in datasets if not name.startswith("mnist")]
    if not TWENTY_NEWS.exists() and "20news-800" in datasets:
        print(f"note: 20news-800 is skipped: {TWENTY_NEWS} is absent", file=sys.stderr)
        datasets = [name for name in datasets if name != "20news-800"]
    noise_rates = args.noise or quick.get("noise", NOISE_RATES)
    seeds = args.seeds or quick.get("seeds", SEEDS)
    settings = ScanSettings() if args.epochs is None else ScanSettings(epochs=args.epochs)
    print(f"settings: {describe(settings)}", file=sys.stderr)

    rows, histories = [], []
    total = len(datasets) * seeds * sum(1 if rate == 0 else len(CURVE_MODES if args.curve else
                                                                  ("cleanlab",))
                                        for rate in noise_rates)
    modes = CURVE_MODES if args.curve else ("cleanlab",)
    for seed in range(first_seed, first_seed + seeds):
        for name, noise, mode in ((name, noise, mode) for name in datasets
                                  for noise in noise_rates for mode in modes
                                  if noise > 0 or mode == modes[0]):
            try:
                row, history = run_one(name, noise, seed, settings, mode=mode)
            except ValueError as exc:  # cleanlab finds no valid noise matrix
                print(f"skip {name} noise={noise} seed={seed}: {exc}", file=sys.stderr)
                continue
            rows.append(row)
            histories.append(history)
            print(f"[{len(rows)}/{total}] {name} noise={noise:.0%} {mode} seed={seed}: "
                  f"{row['regime']} (growth {row['growth'] or 0:+.2f}, "
                  f"{row['seconds']:.1f} s)", file=sys.stderr, flush=True)
            if args.histories:  # keep what is done if a long run is interrupted
                pd.concat(histories).to_csv(args.histories, index=False)
    runs = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(datasets)}
    runs = runs.sort_values(["dataset", "noise", "seed"], key=lambda c: c.map(order)
                            if c.name == "dataset" else c, kind="stable")
    print(detection_table(runs) if args.curve else markdown_table(runs))
    if args.runs:
        runs.to_csv(args.runs, index=False)
    print(f"\n{len(runs)} runs, {runs['seconds'].sum() / 60:.1f} min of scans; "
          f"ScanSettings: {describe(settings)}")
    return 0


def describe(settings) -> str:
    """The ScanSettings fields that shape the monitor fold's curves."""
    fields = ("epochs", "lr", "batch_size", "hidden", "cv", "patience")
    return ", ".join(f"{f}={getattr(settings, f)}" for f in fields if hasattr(settings, f))


if __name__ == "__main__":
    raise SystemExit(main())
