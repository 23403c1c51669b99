"""Same data and seed, same results: byte-identical outputs apart from dates and timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_bad_input import table

CLI = [sys.executable, "-c", "from labelaudit.cli import app; app()"]
# Only these summary.json keys may differ between two runs of the same scan.
VOLATILE = ("created", "timings")


def run_scan(data: Path, out: Path, *, hash_seed: str) -> None:
    """A real scan in its own process; the hash seed varies so set-order leaks would show."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([*CLI, "scan", str(data), "--out", str(out), "--epochs", "4", "--cv",
                           "3", "--audit", "always", "--seed", "7", "--no-cache",
                           "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def stable_summary(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for key in VOLATILE:
        assert key in summary
        summary.pop(key)
    return summary


@pytest.mark.slow
def test_same_data_and_seed_give_identical_outputs(tmp_path):
    data = tmp_path / "data.csv"
    frame = table(n=60)
    frame.loc[[5, 17, 40], "label"] = ["c", "a", "b"]  # a few wrong labels to flag
    frame.to_csv(data, index=False)
    first, second = tmp_path / "first", tmp_path / "second"
    run_scan(data, first, hash_seed="1")
    run_scan(data, second, hash_seed="2")
    # real results, each from its own training (no cache): 60 scored rows, 3 folds x 4 epochs
    assert len((first / "issues.csv").read_text().splitlines()) == 61
    assert len((first / "history.csv").read_text().splitlines()) == 13
    for name in ("issues.csv", "history.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert stable_summary(first) == stable_summary(second)
