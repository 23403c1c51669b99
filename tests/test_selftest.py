"""labelaudit selftest: known errors injected into a temporary copy, found by the real scan."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit.cli import app
from labelaudit.errors import UsageError
from labelaudit.scan import ScanSettings
from labelaudit.selftest import score_issues, selftest

from .conftest import make_table, tree_hashes, write_digit_folder

runner = CliRunner()


def test_selftest_json_on_a_table_finds_the_injected_errors(tmp_path):
    frame, _ = make_table(n=150)
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    before = tree_hashes(tmp_path)
    result = runner.invoke(app, ["selftest", str(path), "--inject", "0.2", "--epochs", "6",
                                 "--cv", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # exactly one JSON document on stdout
    assert "labelaudit selftest" in result.stderr and "labelaudit selftest" not in result.stdout
    assert tree_hashes(tmp_path) == before  # the input is untouched, no copy left beside it
    assert report["n_samples"] == 150 and report["kind"] == "tabular"
    assert 0.1 < report["injected_rate"] < 0.3
    assert report["n_injected"] == round(report["injected_rate"] * 150)
    # The clusters are well separated: far better than chance, not perfect by construction.
    assert report["recall"] > 0.6 and report["precision"] > 0.6
    assert report["auprc"] > 3 * report["auprc_chance"]
    assert abs(report["estimated_noise_rate"] - report["injected_rate"]) < 0.15
    assert set(report["member_auprc"]) >= {"mlp", "knn", "logreg"}
    assert report["settings"]["audit"] == "always"


def test_selftest_on_an_image_folder_maps_moved_files_back(tmp_path):
    root = tmp_path / "digits"
    write_digit_folder(root, n_per_class=25)
    before = tree_hashes(root)
    report = selftest(root, inject=0.2, settings=ScanSettings(epochs=6, cv=3, seed=3))
    assert tree_hashes(root) == before
    assert report["kind"] == "images" and report["n_samples"] == 75
    assert report["n_injected"] > 5
    assert report["auprc"] > 2 * report["auprc_chance"]
    assert report["recall"] > 0.5
    assert report["settings"]["seed"] == 3


def test_score_issues_matches_hand_counts():
    issues = pd.DataFrame({"is_label_issue": [True, True, False, False],
                           "label_quality": [0.1, 0.3, 0.2, 0.9],
                           "quality_knn": [0.9, 0.8, 0.1, 0.2]})
    scores = score_issues([True, False, True, False], issues)
    assert scores["precision"] == 0.5 and scores["recall"] == 0.5 and scores["f1"] == 0.5
    # Low quality first: 0, 2 (both hits) -> 1; knn: 2 (hit), 3, 1, 0 (hit) -> (1 + 2/4) / 2.
    assert scores["auprc"] == 1.0 and scores["auprc_chance"] == 0.5
    assert scores["member_auprc"]["knn"] == pytest.approx((1 / 1 + 2 / 4) / 2)


@pytest.mark.parametrize("args, message", [
    (["--inject", "1.5"], "--inject must be a rate between 0 and 1"),
    (["--inject", "0"], "--inject must be a rate between 0 and 1"),
    (["--frac-zero-noise-rates", "1"], "--frac-zero-noise-rates must be"),
    (["--cv", "1"], "--cv must be at least 2"),
])
def test_selftest_refuses_bad_options(table_csv, args, message):
    result = runner.invoke(app, ["selftest", str(table_csv), *args])
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output and result.stdout == ""


def test_selftest_refuses_a_missing_dataset(tmp_path):
    result = runner.invoke(app, ["selftest", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "no such file or folder" in result.stderr


def test_selftest_refuses_an_injection_that_flips_nothing(tmp_path):
    frame = pd.DataFrame({"x": np.arange(6.0), "label": ["a", "a", "a", "b", "b", "b"]})
    path = tmp_path / "tiny.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(UsageError, match="flipped no label|cannot inject"):
        selftest(path, inject=0.01, settings=ScanSettings(epochs=1, cv=2))


@pytest.mark.parametrize("frac_zero", [0.0, 0.5])
def test_selftest_injects_exactly_the_rate_asked_for(tmp_path, frac_zero):
    frame, _ = make_table(n=150)
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["selftest", str(path), "--inject", "0.1", "--epochs", "2",
                                 "--cv", "2", "--frac-zero-noise-rates", str(frac_zero),
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_injected"] == round(0.1 * 150) == 15
    assert report["injected_rate"] == 15 / 150
    assert "realised rate 10.0%" in " ".join(result.stderr.split())


@pytest.mark.parametrize("seed", range(6))
def test_exact_injection_flips_round_rate_times_n_to_another_class(seed):
    from labelaudit.noise import inject_noise

    y = np.repeat(np.arange(4), [500, 300, 150, 50])
    for rate in (0.05, 0.1, 0.3):
        noisy = inject_noise(y, rate, random_state=seed, exact=True,
                             frac_zero_noise_rates=0.5 if seed % 2 else 0.0)
        assert (noisy != y).sum() == round(rate * len(y))
        assert noisy.min() >= 0 and noisy.max() < 4
