"""Shared fixtures: small datasets generated from scikit-learn's bundled data."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / "datasets"

# CI draws the same examples on every run, so a red CI is reproducible; locally they vary and
# keep looking for new failures.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def write_digit_folder(root: Path, *, n_per_class: int = 30, classes=(0, 1, 7),
                       noise_rate: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Write 8x8 digit PNGs as root/<class>/img-NNNN.png; return the truth table."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from labelaudit.noise import inject_noise

    digits = load_digits()
    rows = []
    for c in classes:
        rows += list(np.flatnonzero(digits.target == c)[:n_per_class])
    rows = np.array(rows)
    true = np.searchsorted(classes, digits.target[rows])
    given = inject_noise(true, noise_rate, random_state=seed) if noise_rate else true
    truth = []
    for i, (row, t, g) in enumerate(zip(rows, true, given, strict=True)):
        rel = f"{classes[g]}/img-{i:04d}.png"
        (root / str(classes[g])).mkdir(parents=True, exist_ok=True)
        pixels = np.round(digits.images[row] * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(root / rel)
        truth.append({"id": rel, "true_label": str(classes[t]), "given_label": str(classes[g])})
    return pd.DataFrame(truth)


def make_table(*, n: int = 150, noise_rate: float = 0.0, seed: int = 0) -> tuple:
    """A wine-like numeric table with one categorical column; returns (frame, true labels)."""
    from sklearn.datasets import make_classification

    from labelaudit.noise import inject_noise

    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, n_redundant=0,
                               n_classes=3, n_clusters_per_class=1, class_sep=2.0,
                               random_state=seed)
    given = inject_noise(y, noise_rate, random_state=seed) if noise_rate else y
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["colour"] = np.where(X[:, 0] > 0, "red", "blue")
    frame["label"] = np.array(["alpha", "beta", "gamma"])[given]
    return frame, y


TOPICS = {
    "space": "orbit rocket launch nasa satellite moon astronaut shuttle planet mission",
    "cooking": "recipe oven flour butter sugar bake kitchen pan garlic onion",
    "sports": "goal match team score league player coach season referee stadium",
}


def make_text_table(*, n_per_class: int = 40, seed: int = 0) -> pd.DataFrame:
    """Generated posts: each draws words from its topic plus common filler words."""
    rng = np.random.default_rng(seed)
    filler = "the a and of to in it is was for on with as this that".split()
    rows = []
    for topic, words in TOPICS.items():
        vocab = words.split()
        for _ in range(n_per_class):
            text = " ".join(rng.choice(vocab + filler, size=25))
            rows.append({"text": text, "topic": topic})
    return pd.DataFrame(rows)


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """`frame` written as the table its suffix names (.csv, .tsv, .parquet or .jsonl)."""
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False, sep="\t" if path.suffix == ".tsv" else ",")
    return path


def tree_hashes(path: Path) -> dict:
    """sha256 of every file under path (or of path itself): proves inputs stay unchanged."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def digit_folder(tmp_path) -> Path:
    root = tmp_path / "digits"
    write_digit_folder(root)
    return root


@pytest.fixture
def table_csv(tmp_path) -> Path:
    frame, _ = make_table()
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def text_csv(tmp_path) -> Path:
    path = tmp_path / "posts.csv"
    make_text_table().to_csv(path, index=False)
    return path


@pytest.fixture
def fast():
    """Settings for quick real scans in tests."""
    from labelaudit.scan import ScanSettings

    return ScanSettings(epochs=6, cv=3, audit="always")


# -- review report fixtures: real scans of small datasets with hostile names, shared by
# -- tests/test_report.py and tests/test_report_browser.py (session-scoped: each scan runs once).

HOSTILE_FILE = "<img src=x onerror=alert(1)>.png"
HOSTILE_CLASS = '7 <i onmouseover=alert(2)>"seven"&amp;'
HOSTILE_TEXT = "</script><script>alert(3)</script> \"double\" 'single' & <b>bold</b> \x01\x1f end"
HOSTILE_LABEL = "<script>alert(4)</script>"
HOSTILE_ID = "\"><svg onload=alert(5)>"


@pytest.fixture(scope="session")
def image_review(tmp_path_factory):
    """(folder, ScanResult): noisy digits with a hostile class folder and a hostile file name."""
    from labelaudit.scan import ScanSettings, scan

    root = tmp_path_factory.mktemp("image-review") / "digits"
    truth = write_digit_folder(root, n_per_class=20, noise_rate=0.15)
    (root / "7").rename(root / HOSTILE_CLASS)
    noisy = truth[truth["true_label"] != truth["given_label"]]
    first = noisy[noisy["given_label"] != "7"].iloc[0]["id"]  # a likely flagged sample
    (root / first).rename((root / first).with_name(HOSTILE_FILE))
    return root, scan(root, ScanSettings(epochs=6, cv=3, audit="always"))


@pytest.fixture(scope="session")
def text_review(tmp_path_factory):
    """(csv, ScanResult): posts with flipped labels, hostile texts, ids and a hostile class."""
    from labelaudit.scan import ScanSettings, scan

    frame = make_text_table(n_per_class=30, seed=1)
    frame.insert(0, "post_id", [f"p{i:03d}" for i in range(len(frame))])
    flipped = [0, 31, 62, 5, 36, 67]
    topics = sorted(TOPICS)
    # A long post that still reads as its true topic, so the audit flags its flipped label.
    frame.loc[31, "text"] = frame.loc[31, "text"] + (" " + TOPICS[frame.loc[31, "topic"]]) * 200
    for i in flipped:
        frame.loc[i, "topic"] = topics[(topics.index(frame.loc[i, "topic"]) + 1) % 3]
    frame.loc[0, "text"] = HOSTILE_TEXT + " " + frame.loc[0, "text"]
    frame.loc[62, "post_id"] = HOSTILE_ID
    frame["topic"] = frame["topic"].replace("sports", HOSTILE_LABEL)
    path = tmp_path_factory.mktemp("text-review") / "posts.csv"
    frame.to_csv(path, index=False)
    return path, scan(path, ScanSettings(epochs=6, cv=3, audit="always", id_column="post_id",
                                         label_column="topic"))
