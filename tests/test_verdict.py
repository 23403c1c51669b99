"""One gap verdict per scan: the terminal, summary.json, report.html and the audit's reason agree.

Iris with 10% of its labels flipped (seed 1) is a run where the monitor fold and all five folds
read the gap differently (steep-climb against over-parametrized); before issue 18 the scan showed
both as "the" verdict.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit import gap
from labelaudit.cli import app
from labelaudit.gap import diagnose

runner = CliRunner()


@pytest.fixture(scope="module")
def iris_noisy(tmp_path_factory):
    from sklearn.datasets import load_iris

    from labelaudit.noise import inject_noise

    iris = load_iris(as_frame=True)
    labels = inject_noise(iris.target.to_numpy(), 0.1, random_state=1)
    frame = iris.data.assign(label=np.asarray(iris.target_names)[labels])
    path = tmp_path_factory.mktemp("iris") / "iris-noisy.csv"
    frame.to_csv(path, index=False)
    return path


def _scan(path, out, *args):
    result = runner.invoke(app, ["scan", str(path), "--out", str(out), "--no-cache", *args])
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "summary.json").read_text())


def _gap_section(out) -> str:
    html = (out / "report.html").read_text()
    return html[html.index('<section id="gap"'):html.index("</section>", html.index(
        '<section id="gap"'))]


@pytest.mark.parametrize("mode", ["auto", "always"])
def test_terminal_summary_report_and_reason_show_one_verdict(iris_noisy, tmp_path, mode):
    out = tmp_path / mode
    result, summary = _scan(iris_noisy, out, "--audit", mode)
    verdict, audit = summary["gap"], summary["audit"]
    history = pd.read_csv(out / "history.csv")
    # The folds' loss curves together read this run differently: the one verdict is the
    # monitor fold's.
    losses = history.drop(columns=list(gap.LABEL_COLUMNS), errors="ignore")
    assert diagnose(losses).regime != verdict["regime"]
    assert verdict == diagnose(history[history["fold"] == 1], n_classes=3).to_dict() | {
        "advice": gap.SCAN_ADVICE[verdict["regime"]]}
    regime = verdict["regime"]
    assert regime == "steep-climb" and verdict["steep"] is True
    # The terminal's gap row, the report's gap section and the reason name only that verdict.
    row = re.escape(f"{regime} (growth {verdict['growth']:+.2f})")
    assert re.search(rf"gap\s*│\s*{row}", result.stderr)
    others = [r for r in gap.REGIMES if r != regime]
    assert not any(r in result.stderr for r in others)
    section = _gap_section(out)
    assert f"regime-{regime}" in section and not any(f"regime-{r}" in section for r in others)
    assert f"{verdict['growth']:+.2f}" in section
    if mode == "auto":
        assert audit["ran"] is verdict["steep"]
        assert f"climbs steeply (growth {verdict['growth']:+.2f}" in audit["reason"]


def test_steep_is_whether_auto_audits_because_of_the_gap(iris_noisy, tmp_path):
    _, auto = _scan(iris_noisy, tmp_path / "auto")
    _, never = _scan(iris_noisy, tmp_path / "never", "--audit", "never")
    assert auto["audit"]["ran"] is auto["gap"]["steep"] is never["gap"]["steep"] is True
    assert auto["gap"] == never["gap"]


def test_climb_start_is_where_the_trend_turns_upward():
    epochs = np.arange(1, 31)
    rng = np.random.default_rng(0)
    train = 0.2 + np.exp(-epochs / 5)
    gap_curve = np.where(epochs <= 7, 0.1, 0.1 + 0.05 * (epochs - 7))
    flat_then_climbing = pd.DataFrame({"epoch": epochs, "train_loss": train,
                                       "val_loss": train + gap_curve
                                       + rng.normal(0, 0.01, 30)})
    assert 7 <= diagnose(flat_then_climbing).climb_start_epoch <= 9
    straight = flat_then_climbing.assign(val_loss=train + 0.02 * epochs
                                         + rng.normal(0, 0.01, 30))
    assert diagnose(straight).climb_start_epoch == 1


def test_best_epochs_are_each_folds_own_and_partial_epochs_are_named():
    rows = []
    for fold, (best, last) in enumerate([(8, 30), (9, 11), (11, 11)], start=1):
        for epoch in range(1, last + 1):
            rows.append({"fold": fold, "epoch": epoch, "train_loss": 1 / epoch,
                         "val_loss": 0.5 + 0.01 * (epoch - best) ** 2})
    verdict = diagnose(pd.DataFrame(rows))
    assert verdict.best_val_epochs == [8, 9, 11] and verdict.best_val_epoch == 9
    text = "\n".join(verdict.evidence)
    assert "median 9, range 8 to 11 over 3 folds" in text
    assert "epochs 12-30: fold 1 only" in text


def test_scan_advice_is_about_the_data_and_log_advice_about_the_model():
    for regime in gap.REGIMES:
        assert "dropout" not in gap.SCAN_ADVICE[regime]
        assert "label" in gap.SCAN_ADVICE[regime]
    assert "no sign of label errors" in gap.SCAN_ADVICE["over-parametrized"].lower()
    assert "--audit always" in gap.SCAN_ADVICE["underfitting"]
    assert "dropout" in gap.ADVICE["over-parametrized"]
