"""Do the user's vectors make a scan better, and does the gate let them in only then?

`scan --embeddings/--encoder` adds two members that learn from the user's vectors;
`labelaudit.audit.gate_members` lets them vote and rank only as far as their out-of-fold
accuracy supports. This benchmark injects known errors (cleanlab's noise generation) and scores
the scan (F1 of is_label_issue, AUPRC of label_quality) four ways on the same folds:

- `without`: the default scan, no vectors;
- `gate`: the vectors with the gate as shipped (JOIN_MARGIN, STEP_OUT_MARGIN);
- `join-all`: every embedding member votes and ranks beside every other member;
- `vectors-only`: the embedding members alone (every other member steps out).

Datasets and their vectors:

- `20news`, `20news-subjects`: the 20 Newsgroups test posts (or their subject lines alone,
  short texts), embedded by a sentence encoder (`--encoder`, default all-MiniLM-L6-v2);
- `mnist-pretrained`: `--mnist-audited` MNIST test images, with the penultimate layer of a
  small CNN trained on the other test images' clean labels: an in-domain pretrained encoder.

    nice -n 10 .venv/bin/python benchmarks/embedding_gate.py --datasets 20news-subjects
    nice -n 10 .venv/bin/python benchmarks/embedding_gate.py --datasets 20news --max-samples 2000

`--degrade 0,1,2` also runs each dataset with its vectors blurred by Gaussian noise of those
scales (relative to unit-length vectors), to find how weak vectors may be before they hurt.

The data, vectors and folds are kept in `--work` (default /tmp/labelaudit-embedding-gate), so a
re-run costs confident learning only. The table goes to stdout, every row to --out (CSV).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from contenders import Bench, write_bench  # noqa: E402
from quality import load_bench, read_mnist  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
VARIANTS = {"without": None, "gate": (), "join-all": (np.inf, np.inf),
            "vectors-only": (np.inf, -np.inf)}  # (JOIN_MARGIN, STEP_OUT_MARGIN)


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- vectors ------------------------------------------------------------------------------------


def sentence_vectors(bench: Bench, encoder: str, work: Path) -> np.ndarray:
    """The texts embedded by `encoder` through labelaudit.encoders (kept in work/cache)."""
    from types import SimpleNamespace

    from labelaudit.encoders import embed
    from labelaudit.progress import Progress

    texts = SimpleNamespace(kind="text", inputs=bench.inputs, n_samples=len(bench.inputs))
    return embed(texts, encoder, cache_dir=work / "cache", progress=Progress(log=note))


def mnist_pretrained(n_audited: int, work: Path, *, seed: int = 0):
    """(Bench of `n_audited` MNIST test images, their vectors): a CNN trained on the other test
    images' clean labels embeds them (its penultimate layer)."""
    import torch

    from labelaudit.models import TorchClassifier

    mnist = read_mnist(SHARED / "mnist-test")
    if mnist is None:
        return None, None
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(mnist.y))
    audited, pretrain = np.sort(order[:n_audited]), order[n_audited:]
    cached = work / f"mnist-pretrained-{n_audited}-{seed}.npy"
    if cached.is_file():
        vectors = np.load(cached)
    else:
        note(f"training the encoder CNN on {len(pretrain)} clean MNIST test images")
        torch.set_num_threads(2)
        model = TorchClassifier(kind="images", n_classes=10, epochs=8, batch_size=64, lr=3e-3,
                                hidden=128, random_state=seed, patience=None)
        model.fit(mnist.inputs[pretrain], mnist.y[pretrain])
        vectors = model.transform(mnist.inputs, audited).astype(np.float32)
        np.save(cached, vectors)
    bench = Bench("mnist-pretrained", "images", mnist.inputs[audited], mnist.y[audited],
                  mnist.classes)
    return bench, vectors


def dataset(name: str, args) -> tuple[Bench | None, np.ndarray | None]:
    if name == "mnist-pretrained":
        return mnist_pretrained(args.mnist_audited, args.work)
    bench = load_bench(name)
    if bench is None:
        return None, None
    vectors = sentence_vectors(bench, args.encoder, args.work)
    if args.max_samples and args.max_samples < len(bench.y):
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(np.arange(len(bench.y)), train_size=args.max_samples,
                                   stratify=bench.y, random_state=0)
        keep = np.sort(keep)
        bench, vectors = replace(bench, inputs=bench.inputs[keep], y=bench.y[keep]), vectors[keep]
    return bench, vectors


# -- runs ---------------------------------------------------------------------------------------


def degraded(vectors: np.ndarray, scale: float, *, seed: int = 0) -> np.ndarray:
    """Unit-length `vectors` plus Gaussian noise of norm about `scale`: weaker vectors."""
    if scale == 0:
        return vectors
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    noise = np.random.default_rng(seed).normal(size=vectors.shape) / np.sqrt(vectors.shape[1])
    return (unit + scale * noise).astype(np.float32)


def run(bench: Bench, vectors: np.ndarray, noise: float, seed: int, work: Path, *,
        blur: float = 0.0) -> list[dict]:
    """Inject the noise, write the data, and scan it each VARIANTS way on shared folds."""
    from labelaudit import audit
    from labelaudit.noise import inject_noise
    from labelaudit.scan import ScanSettings, scan
    from labelaudit.selftest import score_issues

    labels = inject_noise(bench.y, noise, n_classes=bench.n_classes, random_state=seed)
    folder = work / f"{bench.name}-{len(bench.y)}-{noise}-{seed}-blur{blur}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    path, ids = write_bench(bench, labels, folder)
    pd.DataFrame({"id": ids, "vector": list(degraded(vectors, blur))}).to_parquet(
        folder / "vectors.parquet")
    is_noisy = pd.Series(labels != bench.y, index=ids)
    settings = ScanSettings(audit="always", seed=seed, cache_dir=str(work / "cache"))
    shipped = (audit.JOIN_MARGIN, audit.STEP_OUT_MARGIN)
    rows = []
    for variant, margins in VARIANTS.items():
        shutil.rmtree(work / "cache" / "results", ignore_errors=True)
        audit.JOIN_MARGIN, audit.STEP_OUT_MARGIN = margins or shipped
        started = time.perf_counter()
        try:
            result = scan(path, settings if margins is None else
                          replace(settings, embeddings=str(folder / "vectors.parquet")))
        finally:
            audit.JOIN_MARGIN, audit.STEP_OUT_MARGIN = shipped
        scores = score_issues(is_noisy[result.issues["id"]].to_numpy(), result.issues)
        rows.append({"dataset": bench.name, "n": len(labels), "noise": noise, "seed": seed,
                     "blur": blur, "variant": variant, "f1": scores["f1"], "auprc": scores["auprc"],
                     "precision": scores["precision"], "recall": scores["recall"],
                     "members": ";".join(result.audit["members"]),
                     "member_accuracy": result.audit.get("member_accuracy"),
                     "seconds": time.perf_counter() - started})
        note(f"{bench.name} n={len(labels)} noise {noise:.0%} seed {seed} blur {blur} "
             f"{variant:<12} F1 "
             f"{scores['f1']:.3f} AUPRC {scores['auprc']:.3f} members {rows[-1]['members']}")
        if variant == "gate":
            note(f"    {result.audit['gate']}")
        if variant == "join-all":  # every member's probabilities, to study other gates
            keep_members(folder / "members.npz", result, is_noisy)
    return rows


def keep_members(path: Path, result, is_noisy: pd.Series) -> None:
    """The voting members' out-of-fold probabilities (all of them under join-all), the training
    dynamics, the given labels and the truth, in the dataset's order."""
    extra = {} if result.dynamics is None else {"dynamics": result.dynamics}
    np.savez_compressed(path, given=result.dataset.labels,
                        is_noisy=is_noisy[result.dataset.ids].to_numpy(),
                        **{f"member_{k}": v for k, v in result.member_probs.items()}, **extra)


def table(rows: pd.DataFrame) -> str:
    """Means over seeds: one line per dataset, noise and variant."""
    means = rows.groupby(["dataset", "n", "noise", "blur", "variant"], sort=False)[
        ["f1", "auprc"]].mean().reset_index()
    out = ["| dataset | n | noise | blur | variant | F1 | AUPRC |",
           "| --- | ---: | ---: | ---: | --- | ---: | ---: |"]
    for row in means.itertuples():
        out.append(f"| {row.dataset} | {row.n} | {row.noise:.0%} | {row.blur:g} | {row.variant} "
                   f"| {row.f1:.3f} | {row.auprc:.3f} |")
    return "\n".join(out)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="20news-subjects,mnist-pretrained",
                        help="comma-separated: 20news, 20news-subjects, mnist-pretrained")
    parser.add_argument("--noise", default="0.1,0.2", help="comma-separated rates")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--max-samples", type=int, help="stratified sample of the texts")
    parser.add_argument("--mnist-audited", type=int, default=2000)
    parser.add_argument("--degrade", default="0",
                        help="comma-separated noise scales added to the unit-length vectors")
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2")
    parser.add_argument("--work", type=Path, default=Path("/tmp/labelaudit-embedding-gate"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "embedding-gate.csv")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.datasets.split(","):
        bench, vectors = dataset(name, args)
        if bench is None:
            note(f"note: {name} skipped: its data is not in {SHARED}")
            continue
        for noise in map(float, args.noise.split(",")):
            for seed in range(args.seeds):
                for blur in map(float, args.degrade.split(",")):
                    rows += run(bench, vectors, noise, seed, args.work, blur=blur)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                pd.DataFrame(rows).to_csv(args.out, index=False)
    print(table(pd.DataFrame(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
