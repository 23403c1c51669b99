"""Scale benchmark: labelaudit scan beside the plain recipe, on growing data.

    python benchmarks/scale.py                 # 10k, 100k, 1M rows; 1k and 10k images
    python benchmarks/scale.py --quick         # 10k rows and 1k images only
    python benchmarks/scale.py --sizes 100000  # chosen table sizes

Tables: make_classification, 20 features, 10 classes (well separated, no flip_y, so the clean
twin has no label noise of its own), 10% label noise injected with cleanlab.
Images: 28x28 PNG folders (the MNIST test set from ../shared when present, else digits
upscaled to 28x28), 10% noise. Every run is its own process, so its peak RSS is its own:
`labelaudit scan --audit always` (full audit), `--audit auto` on the clean twin (the healthy
path), re-runs from the cache (another `--top-k` and `--fail-above`: the result cache; another
`--filter-by`: the fold cache, cleanlab runs again), and the recipe (StandardScaler +
LogisticRegression, 5-fold cross_val_predict, cleanlab find_label_issues). The start-up floor is
a process that only imports what every scan imports (STARTUP): no healthy scan can cost less,
so "healthy / full above the floor" is the share of the scan's own work. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
LABELAUDIT = str(Path(sys.executable).parent / "labelaudit")

RECIPE = """
import sys, time, numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from cleanlab.filter import find_label_issues
path = sys.argv[1]
if path.endswith('.parquet'):
    frame = pd.read_parquet(path); y = frame.pop('label').to_numpy(); X = frame.to_numpy()
else:
    from PIL import Image
    from pathlib import Path
    files = sorted(Path(path).rglob('*.png'))
    X = np.stack([np.asarray(Image.open(f), dtype=np.float32).ravel() / 255 for f in files])
    y = np.array([int(f.parent.name) for f in files])
pp = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), X, y,
                       cv=5, method='predict_proba')
print(int(find_label_issues(y, pp).sum()))
"""

# What every scan imports before it can train (torch.optim pulls in torch._dynamo): a process
# that only imports these and exits is the fixed start-up cost no scan can go below.
STARTUP = ("import labelaudit.cli, pandas, pyarrow.parquet, sklearn.compose, "
           "sklearn.model_selection, torch, torch._dynamo, matplotlib.figure, "
           "matplotlib.backends.backend_agg")


def timed(cmd: list[str]) -> dict:
    """Run a command in a fresh process: wall time, CPU time (the process and the worker
    processes it waited for) and its peak RSS."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{cmd} failed:\n{proc.stderr[-3000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = usage.ru_maxrss
    # ru_maxrss of children is the largest so far: only trust it when it grew.
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime - cpu_before,
            "peak_rss_mb": peak / 1024 if peak > before else None, "stdout": proc.stdout}


def make_table(path: Path, n: int, *, noise: float, seed: int = 0) -> None:
    import pandas as pd
    from sklearn.datasets import make_classification

    from labelaudit.noise import inject_noise

    X, y = make_classification(n_samples=n, n_features=20, n_informative=15, n_redundant=2,
                               n_classes=10, n_clusters_per_class=1, class_sep=3.0,
                               flip_y=0.0, random_state=seed)
    frame = pd.DataFrame(X.astype(np.float32), columns=[f"f{i}" for i in range(20)])
    frame["label"] = inject_noise(y, noise, random_state=seed) if noise else y
    frame.to_parquet(path)


def image_source():
    if (SHARED / "mnist-test").exists():
        raw = gzip.open(SHARED / "mnist-test" / "t10k-images-idx3-ubyte.gz").read()
        images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
        raw = gzip.open(SHARED / "mnist-test" / "t10k-labels-idx1-ubyte.gz").read()
        return images, np.frombuffer(raw, np.uint8, offset=8).astype(np.int64), "MNIST test"
    print("note: ../shared/data/mnist-test is absent; using digits upscaled to 28x28",
          file=sys.stderr)
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    reps = int(np.ceil(10_000 / len(digits.target)))
    images = np.stack([np.asarray(Image.fromarray((im * 16).astype(np.uint8)).resize((28, 28)))
                       for im in digits.images] * reps)[:10_000]
    return images, np.tile(digits.target, reps)[:10_000], "digits upscaled"


def make_images(root: Path, n: int, *, noise: float, seed: int = 0) -> None:
    from PIL import Image

    from labelaudit.noise import inject_noise

    images, labels, _ = image_source()
    images, labels = images[:n], labels[:n]
    given = inject_noise(labels, noise, random_state=seed) if noise else labels
    for i, (im, label) in enumerate(zip(images, given, strict=True)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(root / str(label) / f"{i:05d}.png")


def scan(data: Path, out: Path, *extra: str) -> dict:
    run = timed([LABELAUDIT, "scan", str(data), "--out", str(out), "-q", "--json", *extra])
    summary = json.loads(run["stdout"])
    run["timings"] = summary["timings"]
    run["n_flagged"] = summary["audit"]["n_flagged"]
    run["regime"] = summary["gap"]["regime"]
    run["audited"] = summary["audit"]["ran"]
    return run


def bench(name: str, data: Path, clean: Path, work: Path) -> dict:
    full = scan(data, work / "out-full", "--audit", "always")
    rerun = scan(data, work / "out-full", "--audit", "always", "--top-k", "50",
                 "--fail-above", "0.5")
    refilter = scan(data, work / "out-full", "--audit", "always", "--filter-by", "both")
    healthy = scan(clean, work / "out-clean", "--audit", "auto", "--no-cache")
    recipe = timed([sys.executable, "-c", RECIPE, str(data)])
    startup = timed([sys.executable, "-c", STARTUP])
    return {"data": name, "full": full, "rerun": rerun, "refilter": refilter, "healthy": healthy,
            "recipe": recipe, "startup": startup}


def fmt(row: dict) -> str:
    t = row["full"]["timings"]
    stages = ", ".join(f"{k} {t[k]:.1f}" for k in ("load", "features", "monitor", "folds",
                                                     "confident_learning") if k in t)
    rss = row["full"]["peak_rss_mb"]
    full, healthy, rerun, refilter = row["full"], row["healthy"], row["rerun"], row["refilter"]
    floor = row["startup"]["wall_s"]
    return (f"| {row['data']} | {full['wall_s']:.1f} ({full['cpu_s']:.0f}) | "
            f"{f'{rss:.0f}' if rss else 'n/a'} | {stages} | {healthy['wall_s']:.1f} "
            f"({healthy['cpu_s']:.0f}), {healthy['regime']}"
            f"{', audited' if healthy['audited'] else ''} | "
            f"{healthy['wall_s'] / full['wall_s']:.0%} "
            f"({healthy['cpu_s'] / full['cpu_s']:.0%}) | "
            f"{floor:.1f} ({floor / full['wall_s']:.0%}) | "
            f"{(healthy['wall_s'] - floor) / (full['wall_s'] - floor):.0%} | {rerun['wall_s']:.1f} "
            f"({full['wall_s'] / rerun['wall_s']:.1f}x) | {refilter['wall_s']:.1f} "
            f"({full['wall_s'] / refilter['wall_s']:.1f}x) | {row['recipe']['wall_s']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--images", type=int, nargs="*", default=None)
    parser.add_argument("--json", type=Path, help="also write raw results here")
    args = parser.parse_args()
    sizes = args.sizes if args.sizes is not None else (
        [10_000] if args.quick else [10_000, 100_000, 1_000_000])
    image_sizes = args.images if args.images is not None else (
        [1_000] if args.quick else [1_000, 10_000])
    rows = []
    print("| data | full audit s (CPU s) | peak RSS MB | stages s "
          "| healthy (auto) s (CPU s), verdict | healthy / full, wall (CPU) "
          "| start-up floor s (of full) | healthy / full above the floor "
          "| re-run, other top-k s (speed-up) | re-run, other filter s (speed-up) | recipe s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in sizes:
            make_table(work / "noisy.parquet", n, noise=0.1)
            make_table(work / "clean.parquet", n, noise=0.0)
            rows.append(bench(f"table {n:,} rows", work / "noisy.parquet",
                              work / "clean.parquet", work))
            print(fmt(rows[-1]), flush=True)
        for n in image_sizes:
            for name, noise in (("noisy", 0.1), ("clean", 0.0)):
                make_images(work / f"img-{name}-{n}", n, noise=noise)
            rows.append(bench(f"images {n:,} (28x28)", work / f"img-noisy-{n}",
                              work / f"img-clean-{n}", work))
            print(fmt(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
