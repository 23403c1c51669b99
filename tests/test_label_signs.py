"""The gap's per-sample side: the monitor's training error and flagged held-out labels at its best
validation epoch decide a steep verdict where the loss curves alone miss 5% of wrong labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit import gap
from labelaudit.cli import app
from labelaudit.gap import diagnose

runner = CliRunner()


def _curves(train_error, val_flagged=0.0, *, epochs=20, best=8):
    """A converged loss history (no climbing gap) carrying the per-sample curves."""
    e = np.arange(1, epochs + 1)
    train = 0.3 + np.exp(-e / 3)
    val = np.maximum(train, train[best - 1]) + 0.1 + 0.001 * np.maximum(e - best, 0)
    error = np.where(e <= best, train_error, train_error / 2)
    return pd.DataFrame({"epoch": e, "train_loss": train, "val_loss": val,
                         "train_error": error, "val_flagged": val_flagged})


def test_training_labels_still_wrong_at_the_best_epoch_make_the_verdict_steep():
    plain = diagnose(_curves(0.0).drop(columns=["train_error", "val_flagged"]))
    assert not plain.steep and plain.train_error_at_best is None
    verdict = diagnose(_curves(0.05))
    assert verdict.regime == "steep-climb" and verdict.steep
    assert verdict.train_error_at_best == pytest.approx(0.05)
    assert verdict.train_error_fall_after_best == pytest.approx(0.025)
    assert "5.0% of its training labels wrong" in verdict.evidence[-1]
    assert not diagnose(_curves(gap.WRONG_LABELS - 0.01)).steep


def test_held_out_labels_speak_only_where_every_training_label_was_fit():
    verdict = diagnose(_curves(0.0, 0.05))
    assert verdict.steep and "held-out labels" in verdict.evidence[-1]
    # With training labels still wrong (hard samples), flagged held-out labels are not enough.
    assert not diagnose(_curves(0.02, 0.05)).steep
    assert not diagnose(_curves(0.0, gap.WRONG_LABELS - 0.01)).steep


def test_a_network_that_fits_nothing_is_not_read_as_wrong_labels():
    e = np.arange(1, 21)
    flat = pd.DataFrame({"epoch": e, "train_loss": 1.0, "val_loss": 1.05,
                         "train_error": 0.6, "val_flagged": 0.1})
    assert diagnose(flat).regime == "underfitting"
    # Hedging near its class boundaries, a weak network contradicts no held-out label outright.
    assert diagnose(flat.assign(val_contradicted=0.0)).regime == "underfitting"
    assert diagnose(flat.assign(val_contradicted=gap.CONTRADICTED - 0.01)).regime == \
        "underfitting"


def test_an_underfitting_network_that_refuses_labels_outright_shows_wrong_labels():
    """Drawn 16 px shapes with 20% wrong labels: the network predicts every true shape from the
    first epoch and never memorises the rest, so its loss stays high (underfitting); it gives
    the wrong held-out labels a probability near zero."""
    e = np.arange(1, 16)
    flat = pd.DataFrame({"epoch": e, "train_loss": 0.8, "val_loss": 0.76,
                         "train_error": 0.2, "val_flagged": 0.19, "val_contradicted": 0.15})
    verdict = diagnose(flat)
    assert verdict.regime == "steep-climb" and verdict.steep_by == "contradicted-labels"
    assert verdict.val_contradicted_after_best == pytest.approx(0.15)
    assert "15.0% of the held-out labels a probability under 0.1" in verdict.evidence[-1]


def test_a_clean_board_too_fine_for_the_network_does_not_start_the_audit(tmp_path):
    """A 10 x 10 checkerboard: clean labels the monitor's network cannot fit (underfitting),
    where confident learning flags many held-out labels but the network contradicts none."""
    xy = np.random.default_rng(0).uniform(0, 1, (3000, 2))
    labels = np.where(np.floor(xy * 10).sum(axis=1) % 2, "odd", "even")
    path = tmp_path / "board.csv"
    pd.DataFrame(xy, columns=["x", "y"]).assign(label=labels).to_csv(path, index=False)
    out = tmp_path / "out"
    result = runner.invoke(app, ["scan", str(path), "--out", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    verdict = json.loads((out / "summary.json").read_text())["gap"]
    assert verdict["regime"] == "underfitting" and verdict["steep"] is False
    assert verdict["train_error_at_best"] > 0.3 and verdict["val_flagged_after_best"] > 0.1
    assert verdict["val_contradicted_after_best"] < gap.CONTRADICTED
    assert "val_contradicted" in pd.read_csv(out / "history.csv").columns


@pytest.fixture(scope="module")
def digits_24px(tmp_path_factory):
    """600 digit images at 24 px, 30 of them (5%) in a wrong folder: the issue's case that
    read over-parametrized and skipped the audit."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    keep = rng.choice(len(digits.target), 600, replace=False)
    labels = digits.target[keep].copy()
    wrong = rng.choice(600, 30, replace=False)
    labels[wrong] = (labels[wrong] + rng.integers(1, 10, 30)) % 10
    root = tmp_path_factory.mktemp("digits24") / "digits"
    for i, (image, label) in enumerate(zip(digits.images[keep], labels, strict=True)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        pixels = Image.fromarray(np.round(image * 255 / 16).astype(np.uint8), mode="L")
        pixels.resize((24, 24), Image.NEAREST).save(root / str(label) / f"d{i:03d}.png")
    return root, {f"d{i:03d}.png" for i in wrong}


def test_five_percent_wrong_folders_start_the_audit(digits_24px, tmp_path):
    root, wrong = digits_24px
    out = tmp_path / "out"
    result = runner.invoke(app, ["scan", str(root), "--out", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gap"]["regime"] == "steep-climb" and summary["audit"]["ran"] is True
    assert summary["gap"]["train_error_at_best"] >= gap.WRONG_LABELS
    history = pd.read_csv(out / "history.csv")
    monitor = history[history["train_error"].notna()]
    assert len(monitor) and monitor["fold"].nunique() == 1
    # The monitor (fold 0, unshifted) gave the verdict: the report says the plot draws it apart.
    assert "the purple line is fold 0's gap alone" in (out / "report.html").read_text()
    issues = pd.read_csv(out / "issues.csv")
    flagged = issues.loc[issues["is_label_issue"], "id"].map(lambda p: p.split("/")[-1])
    assert len(wrong & set(flagged)) >= 20


def test_a_clean_generated_table_does_not_start_the_audit(tmp_path):
    from sklearn.datasets import make_classification

    for seed in (0, 1, 2):
        X, y = make_classification(n_samples=3000, n_features=20, n_informative=10,
                                   n_classes=4, class_sep=1.6, flip_y=0.0, random_state=seed)
        path = tmp_path / f"clean{seed}.csv"
        pd.DataFrame(X).add_prefix("x").assign(label=y).to_csv(path, index=False)
        out = tmp_path / f"out{seed}"
        result = runner.invoke(app, ["scan", str(path), "--out", str(out), "--no-cache"])
        assert result.exit_code == 0, result.output
        summary = json.loads((out / "summary.json").read_text())
        assert summary["audit"]["ran"] is False, summary["gap"]["evidence"]


def test_the_reason_names_the_curves_that_decided():
    from labelaudit.scan import _decide

    by_training = diagnose(_curves(0.05))
    assert by_training.steep_by == "training-labels"
    ran, reason = _decide("auto", by_training, 1)
    assert ran and "5.0% of its training labels wrong" in reason
    by_held_out = diagnose(_curves(0.0, 0.05))
    assert by_held_out.steep_by == "held-out-labels"
    assert "5.0% of the held-out labels" in _decide("auto", by_held_out, 1)[1]
    assert diagnose(_curves(0.0)).steep_by is None


def test_the_training_error_is_read_where_the_best_plateau_starts():
    """On a small held-out part noise picks the lowest of near-equal epochs; the training error
    is read at the first of them, before the network memorised more."""
    frame = _curves(0.05, best=8)
    frame.loc[frame["epoch"] == 12, "val_loss"] = frame["val_loss"].min() - 0.001
    frame.loc[frame["epoch"] > 8, "train_error"] = 0.01
    verdict = diagnose(frame)
    assert verdict.train_error_at_best == pytest.approx(0.05) and verdict.steep


def test_the_plot_draws_the_fold_the_verdict_read_apart():
    from labelaudit.plot import _figure

    monitor = _curves(0.05).assign(fold=0)
    others = [_curves(0.0).assign(fold=k, val_loss=lambda f: f["train_loss"] + 0.05)
              for k in (1, 2)]
    history = pd.concat([monitor, *others])
    verdict = diagnose(monitor)
    labels = [line.get_label() for line in _figure(history, verdict=verdict,
                                                    verdict_fold=0).axes[0].lines]
    assert "fold 0's gap (the verdict's)" in labels
    # Without a fold named, or with a verdict read on every fold, only the median is drawn.
    labels = [line.get_label() for line in _figure(history, verdict=verdict).axes[0].lines]
    assert not any("verdict's" in label for label in labels)


def test_a_scans_history_with_every_fold_reads_the_monitors_per_sample_curves():
    """history.csv of a scan that audited: only the monitor fold carries train_error."""
    monitor = _curves(0.05).assign(fold=1)
    other = _curves(0.0).drop(columns=["train_error", "val_flagged"]).assign(fold=2)
    verdict = diagnose(pd.concat([monitor, other]))
    assert verdict.train_error_at_best == pytest.approx(0.05)
    assert "3.5%" in verdict.evidence[-1]
