"""The gap diagnosis: regimes from curves that show them, invariances, GapMonitor, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from labelaudit import gap
from labelaudit.cli import app
from labelaudit.gap import GapMonitor, diagnose, pooled_sen_slope

ROOT = Path(__file__).resolve().parent.parent
LOGS = Path(__file__).parent / "data" / "logs"
runner = CliRunner()


def curves(kind: str, *, epochs: int = 20, folds: int = 3, noise: float = 0.01,
           seed: int = 0) -> pd.DataFrame:
    """Loss curves shaped like each regime, a few folds, with epoch-to-epoch jitter."""
    rng = np.random.default_rng(seed)
    e = np.arange(1, epochs + 1, dtype=float)
    frames = []
    for fold in range(1, folds + 1):
        offset = 0.02 * fold
        if kind == "steep-climb":  # memorising wrong labels: train keeps falling, val rises
            train = 0.3 + 0.7 * np.exp(-0.2 * e) - 0.012 * e
            val = 0.45 + 0.6 * np.exp(-0.4 * e) + 0.03 * np.maximum(0, e - 6)
        elif kind == "converged":  # both level off, the gap stays put
            train = 0.3 + 0.7 * np.exp(-0.4 * e)
            val = 0.4 + 0.7 * np.exp(-0.4 * e)
        elif kind == "over-parametrized":  # train, already low, still falling; val flat
            train = 0.02 + 0.9 * np.exp(-0.5 * e) + 0.1 * np.maximum(0, 1 - e / epochs)
            val = 0.42 + 0.6 * np.exp(-0.5 * e)
        elif kind == "overconfident":  # train at its floor, val creeping up
            train = 0.01 + 0.99 * np.exp(-0.6 * e)
            val = 0.15 + 0.85 * np.exp(-0.6 * e) + 0.008 * e
        elif kind == "underfitting":  # barely learns
            train = 1.0 - 0.003 * e
            val = 1.02 - 0.003 * e
        else:
            raise ValueError(kind)
        frames.append(pd.DataFrame({
            "fold": fold, "epoch": e.astype(int),
            "train_loss": train + offset + rng.normal(0, noise, epochs),
            "val_loss": val + offset + rng.normal(0, noise, epochs)}))
    return pd.concat(frames, ignore_index=True)


# --- regimes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, regime", [
    ("steep-climb", "steep-climb"),
    ("converged", "converged"),
    ("over-parametrized", "over-parametrized"),
    ("overconfident", "over-parametrized"),
    ("underfitting", "underfitting"),
])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_regime_from_curves_that_show_it(kind, regime, seed):
    verdict = diagnose(curves(kind, seed=seed))
    assert verdict.regime == regime
    assert verdict.steep is (regime == "steep-climb")
    assert verdict.advice == gap.ADVICE[regime]
    assert verdict.folds == 3 and verdict.epochs == 20


def test_too_few_epochs_is_too_little_evidence():
    verdict = diagnose(curves("steep-climb", epochs=gap.MIN_EPOCHS - 1))
    assert verdict.regime == "too-little-evidence" and not verdict.steep
    assert "at least" in verdict.evidence[0]


def test_curves_too_noisy_to_judge_are_too_little_evidence():
    # A real but small climb drowned in noise: the interval holds flat and steep alike.
    verdict = diagnose(curves("steep-climb", epochs=8, folds=1, noise=0.25, seed=3))
    assert verdict.regime == "too-little-evidence"
    assert verdict.slope_low * 7 <= 0 < gap.STEEP_GROWTH <= verdict.slope_high * 7


def test_evidence_of_a_steep_climb():
    h = curves("steep-climb", noise=0.0)
    verdict = diagnose(h)
    mean = h.groupby("epoch")[["train_loss", "val_loss"]].median()
    assert verdict.best_val_epoch == int(mean["val_loss"].idxmin())
    gap_curve = mean["val_loss"] - mean["train_loss"]
    # The trend turns upward after the gap's low, by the best-validation epoch.
    assert int(gap_curve.idxmin()) <= verdict.climb_start_epoch <= verdict.best_val_epoch
    assert verdict.slope_low <= verdict.slope <= verdict.slope_high
    assert verdict.growth == pytest.approx(verdict.slope * 19)
    assert verdict.train_change < 0 < verdict.val_change
    assert verdict.window_start == 10.5
    text = " ".join(verdict.evidence)
    assert "best validation epoch" in text and "interval" in text and "rule:" in text
    json.dumps(verdict.to_dict())


def test_all_folds_are_used():
    h = curves("steep-climb")
    one = diagnose(h[h["fold"] == 1])
    every = diagnose(h)
    assert one.folds == 1 and every.folds == 3
    # More folds, more pairs: a tighter interval around the same trend.
    assert (every.slope_high - every.slope_low) < (one.slope_high - one.slope_low)


def test_missing_columns_are_a_usage_error():
    from labelaudit.errors import UsageError

    with pytest.raises(UsageError, match="missing val_loss"):
        diagnose(pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5]}))


def test_long_per_step_logs_are_binned():
    x = np.arange(1, 20_001)
    h = pd.DataFrame({"epoch": x / 1000, "train_loss": 1 / np.sqrt(x),
                      "val_loss": 1 / np.sqrt(x) + x / 20_000})
    verdict = diagnose(h)
    assert verdict.epochs == 20_000 and verdict.regime in ("steep-climb", "over-parametrized")
    assert verdict.growth > gap.STEEP_GROWTH


# --- the estimator ---------------------------------------------------------------------------


def test_pooled_sen_slope_matches_theil_sen_for_one_group():
    from scipy.stats import theilslopes

    rng = np.random.default_rng(0)
    x = np.arange(15.0)
    y = 0.3 * x + rng.normal(0, 1, 15)
    ours = pooled_sen_slope(x, y, confidence=0.9)
    slope, _, low, high = theilslopes(y, x, alpha=0.9)
    assert (ours.slope, ours.low, ours.high) == pytest.approx((slope, low, high))


def test_pooled_sen_slope_ignores_offsets_between_groups():
    x = np.tile(np.arange(10.0), 3)
    groups = np.repeat([0, 1, 2], 10)
    y = -0.1 * x + 5.0 * groups  # each group flat-ish but far apart
    assert pooled_sen_slope(x, y, groups).slope == pytest.approx(-0.1)


# --- invariances -----------------------------------------------------------------------------

KINDS = ["steep-climb", "converged", "over-parametrized", "overconfident", "underfitting"]
fast = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@fast
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 50),
       factor=st.floats(1e-3, 1e3))
def test_scaling_every_loss_changes_nothing(kind, seed, factor):
    h = curves(kind, seed=seed)
    scaled = h.assign(train_loss=h["train_loss"] * factor, val_loss=h["val_loss"] * factor)
    a, b = diagnose(h), diagnose(scaled)
    assert a.regime == b.regime
    assert a.growth == pytest.approx(b.growth, rel=1e-6, abs=1e-9)
    assert b.scale == pytest.approx(a.scale * factor)


@fast
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 50),
       stretch=st.sampled_from([0.01, 0.5, 2.0, 100.0]), shift=st.integers(-5, 1000))
def test_epoch_units_and_origin_change_nothing(kind, seed, stretch, shift):
    h = curves(kind, seed=seed)
    moved = h.assign(epoch=h["epoch"] * stretch + shift)
    a, b = diagnose(h), diagnose(moved)
    assert a.regime == b.regime
    assert a.growth == pytest.approx(b.growth, rel=1e-6, abs=1e-9)


@fast
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 50), order=st.randoms())
def test_row_order_and_fold_names_change_nothing(kind, seed, order):
    h = curves(kind, seed=seed)
    rows = list(h.index)
    order.shuffle(rows)
    shuffled = h.loc[rows].assign(fold=h.loc[rows, "fold"].map({1: 30, 2: 10, 3: 20}))
    assert diagnose(h).to_dict() == diagnose(shuffled).to_dict()


@fast
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 50), k=st.floats(0.0, 0.1))
def test_a_faster_climbing_validation_loss_never_undoes_a_steep_climb(kind, seed, k):
    h = curves(kind, seed=seed)
    before = diagnose(h)
    after = diagnose(h.assign(val_loss=h["val_loss"] + k * h["epoch"]))
    assert after.growth >= before.growth - 1e-9
    if before.steep:
        assert after.steep


@fast
@given(seed=st.integers(0, 50), gap_size=st.floats(0.0, 0.5), noise=st.floats(0.0, 0.02))
def test_a_constant_gap_never_climbs(seed, gap_size, noise):
    h = curves("steep-climb", seed=seed, noise=noise)
    flat = h.assign(val_loss=h["train_loss"] + gap_size)
    assert not diagnose(flat).steep


# --- GapMonitor ------------------------------------------------------------------------------


def test_gap_monitor_in_a_training_loop():
    from labelaudit import GapMonitor as Exported

    assert Exported is GapMonitor
    h = curves("steep-climb", folds=1)
    monitor = GapMonitor()
    assert monitor.verdict.regime == "too-little-evidence"
    seen = []
    for row in h.itertuples():
        verdict = monitor.update(row.epoch, row.train_loss, row.val_loss)
        seen.append(verdict.regime)
    assert seen[: gap.MIN_EPOCHS - 1] == ["too-little-evidence"] * (gap.MIN_EPOCHS - 1)
    assert monitor.verdict.regime == "steep-climb"
    assert monitor.verdict == diagnose(h)
    assert list(monitor.history.columns) == ["fold", "epoch", "train_loss", "val_loss", "gap"]


def test_gap_monitor_accepts_tensors_and_folds():
    import torch

    monitor = GapMonitor()
    h = curves("converged", folds=2)
    for row in h.itertuples():
        monitor.update(row.epoch, torch.tensor(row.train_loss), torch.tensor(row.val_loss),
                       fold=row.fold)
    assert monitor.verdict.folds == 2 and monitor.verdict.regime == "converged"


# --- labelaudit gap --------------------------------------------------------------------------


def test_cli_gap_prints_regime_evidence_and_advice():
    result = runner.invoke(app, ["gap", str(LOGS / "lightning_metrics.csv")])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # people's output goes to stderr
    assert "steep-climb" in result.stderr and "lightning-csv" in result.stderr
    assert "best validation epoch" in result.stderr and "wrongly assigned labels" in result.stderr


@pytest.mark.parametrize("name, fmt, regime", [
    ("keras_log.csv", "keras-csv", "converged"),
    ("skorch_history.json", "skorch", "underfitting"),
    ("plain.csv", "csv", "over-parametrized"),
])
def test_cli_gap_json_is_one_document(name, fmt, regime):
    result = runner.invoke(app, ["gap", str(LOGS / name), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["format"] == fmt and document["regime"] == regime
    assert {"slope", "slope_low", "slope_high", "growth", "best_val_epoch",
            "climb_start_epoch", "advice", "evidence", "train_key", "val_key"} <= set(document)
    assert result.stderr == ""


def test_cli_gap_plot(tmp_path):
    out = tmp_path / "curves.png"
    result = runner.invoke(app, ["gap", str(LOGS / "keras_history.json"), "--plot", str(out),
                                 "-q"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("args, message", [
    (["nope.csv"], "no such file"),
    ([str(LOGS / "keras_log.csv"), "--val-key", "val_acc"], "keys found in"),
    ([str(LOGS / "keras_log.csv"), "--plot", "curves.pdf"], ".svg or .png"),
    ([str(ROOT / "pyproject.toml")], "unknown log format"),
])
def test_cli_gap_unreadable_logs_exit_2_without_traceback(args, message):
    result = runner.invoke(app, ["gap", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_installed_entry_point(tmp_path):
    exe = Path(sys.executable).parent / "labelaudit"
    plot = tmp_path / "curves.svg"
    done = subprocess.run([str(exe), "gap", str(LOGS / "trainer_state.json"), "--json",
                           "--plot", str(plot)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["format"] == "huggingface" and document["regime"] == "steep-climb"
    assert document["plot"] == str(plot) and plot.read_text().startswith("<svg")
    assert "steep-climb" in done.stderr


def test_calibration_benchmark_rediagnoses_saved_curves(tmp_path):
    """benchmarks/gap_calibration.py --from-histories: the table from saved curves, no training."""
    frames = []
    for dataset, kinds in {"a": ("converged", "steep-climb"), "b": ("overconfident",
                                                                      "steep-climb")}.items():
        for noise, kind in zip((0.0, 0.2), kinds, strict=True):
            frames.append(curves(kind).assign(dataset=dataset, noise=noise, seed=0))
    pd.concat(frames).to_csv(tmp_path / "runs.csv", index=False)
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gap_calibration.py"),
                           "--from-histories", str(tmp_path / "runs.csv")],
                          capture_output=True, text=True, timeout=120, check=True)
    lines = done.stdout.splitlines()
    assert lines[0] == "| dataset | 0% noise | 20% noise |"
    assert "| a | 0% (0/1) | 100% (1/1) |" in lines
    assert "| **all** | **0% (0/2)** | **100% (2/2)** |" in lines
