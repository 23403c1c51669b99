"""Regenerate the demo datasets in this folder, deterministically.

    python datasets/make_datasets.py

Every dataset comes from scikit-learn's bundled data. Label errors are injected with cleanlab's
noise generation (labelaudit.noise.inject_noise); the ground truth of each noisy dataset is
written beside it as NAME.truth.csv (id, true_label, given_label, is_noisy), never inside the
folder or table that gets scanned.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_digits, load_wine

from labelaudit.noise import inject_noise

HERE = Path(__file__).resolve().parent
NOISE_RATE = 0.10
SEED = 0


def write_truth(name: str, ids, true_names, given_names) -> None:
    truth = pd.DataFrame({"id": ids, "true_label": true_names, "given_label": given_names})
    truth["is_noisy"] = truth["true_label"] != truth["given_label"]
    truth.to_csv(HERE / f"{name}.truth.csv", index=False)


def digits_folder(name: str, noise_rate: float) -> None:
    """8x8 digit images as PNG files in class folders 0..9, file names from the sample index."""
    digits = load_digits()
    y = digits.target
    given = inject_noise(y, noise_rate, random_state=SEED) if noise_rate else y
    root = HERE / name
    shutil.rmtree(root, ignore_errors=True)
    ids = []
    for i, (image, label) in enumerate(zip(digits.images, given, strict=True)):
        rel = f"{label}/digit-{i:04d}.png"
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        pixels = np.round(image * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(root / rel, optimize=True)
        ids.append(rel)
    if noise_rate:
        write_truth(name, ids, y.astype(str), given.astype(str))


def table(name: str, loader, noise_rate: float) -> None:
    """A CSV with an id column, the features, and class names in a `label` column."""
    bunch = loader()
    names = np.asarray(bunch.target_names, dtype=object)
    y = bunch.target
    given = inject_noise(y, noise_rate, random_state=SEED) if noise_rate else y
    frame = pd.DataFrame(bunch.data, columns=[c.replace(" ", "_") for c in bunch.feature_names])
    frame.insert(0, "sample_id", [f"s{i:04d}" for i in range(len(y))])
    frame["label"] = names[given]
    frame.to_csv(HERE / f"{name}.csv", index=False, float_format="%.6g")
    if noise_rate:
        write_truth(name, frame["sample_id"], names[y], names[given])


def main() -> None:
    digits_folder("digits-noisy", NOISE_RATE)
    digits_folder("digits-clean", 0.0)
    table("breast-cancer-noisy", load_breast_cancer, NOISE_RATE)
    table("wine-noisy", load_wine, NOISE_RATE)
    table("wine-clean", load_wine, 0.0)


if __name__ == "__main__":
    main()
