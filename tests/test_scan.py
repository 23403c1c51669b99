"""labelaudit scan end to end: each input kind, the id rules, the output schema, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit.audit import ISSUE_COLUMNS
from labelaudit.cli import app
from labelaudit.data import load_dataset
from labelaudit.scan import ScanSettings, scan

from .conftest import DATASETS, ROOT, make_table, make_text_table, tree_hashes, write_digit_folder

runner = CliRunner()
FAST = ["--epochs", "6", "--cv", "3"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


# -- loading and ids -----------------------------------------------------------------------------


def test_image_ids_are_posix_paths_relative_to_root(tmp_path):
    root = tmp_path / "imgs"
    write_digit_folder(root, n_per_class=5)
    nested = root / "7" / "sub" / "deeper"
    nested.mkdir(parents=True)
    (root / "7" / "img-0010.png").rename(nested / "x.PNG")  # extension case-insensitively
    ds = load_dataset(root)
    assert ds.kind == "images"
    assert ds.classes == ("0", "1", "7")  # sorted by name
    assert "7/sub/deeper/x.PNG" in set(ds.ids)
    assert all("\\" not in i and not i.startswith("/") for i in ds.ids)
    assert ds.inputs.shape == (15, 1, 8, 8) and ds.inputs.dtype == np.uint8


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_tables_of_every_format_load_the_same(tmp_path, suffix):
    frame, _ = make_table(n=60)
    path = tmp_path / f"t{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    ds = load_dataset(path)
    assert ds.kind == "tabular"
    assert ds.label_column == "label"
    assert list(ds.ids[:3]) == ["0", "1", "2"]  # 0-based row numbers
    assert ds.classes == ("alpha", "beta", "gamma")
    assert list(ds.inputs.columns) == ["f0", "f1", "f2", "f3", "f4", "f5", "colour"]
    np.testing.assert_array_equal(
        np.array(ds.classes)[ds.labels], frame["label"].to_numpy())


def test_label_column_fallbacks_and_id_column(tmp_path):
    frame, _ = make_table(n=40)
    frame = frame.rename(columns={"label": "Target"})
    frame.insert(0, "key", [f"k{i}" for i in range(len(frame))])
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(path, id_column="key")
    assert ds.label_column == "Target"
    assert list(ds.ids[:2]) == ["k0", "k1"]
    assert "key" not in ds.inputs.columns


def test_text_column_detected_and_overridable(tmp_path):
    frame = make_text_table(n_per_class=10)
    frame["short"] = "x"
    path = tmp_path / "posts.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(path, label_column="topic")
    assert ds.kind == "text" and ds.text_column == "text"
    assert load_dataset(path, label_column="topic", kind="tabular").kind == "tabular"


# -- the scan ------------------------------------------------------------------------------------


def test_scan_images_writes_contract_outputs(tmp_path, digit_folder):
    out = tmp_path / "report"
    before = tree_hashes(digit_folder)
    result = run("scan", digit_folder, "--out", out, "--audit", "always", *FAST, "--quiet")
    assert result.exit_code == 0, result.output
    assert tree_hashes(digit_folder) == before
    issues = pd.read_csv(out / "issues.csv", dtype={"id": str, "given_label": str})
    assert list(issues.columns[:6]) == ISSUE_COLUMNS
    assert len(issues) == 90
    assert set(issues["id"]) == set(load_dataset(digit_folder).ids)
    assert issues["label_quality"].is_monotonic_increasing
    assert issues["label_quality"].between(0, 1).all()
    flagged = issues[issues["is_label_issue"]]
    assert list(flagged["rank"]) == list(range(1, len(flagged) + 1))
    assert issues.loc[~issues["is_label_issue"], "rank"].isna().all()
    assert set(issues["given_label"]) <= {"0", "1", "7"}

    history = pd.read_csv(out / "history.csv")
    assert list(history.columns[:5]) == ["fold", "epoch", "train_loss", "val_loss", "gap"]
    # The monitor fold alone adds its per-sample curves (gap.LABEL_COLUMNS).
    assert list(history.columns[5:6]) == ["train_error"]
    assert set(history.columns[6:]) <= {"val_flagged", "val_contradicted"}
    assert list(history.loc[history["train_error"].notna(), "fold"].unique()) == [1]
    assert sorted(history["fold"].unique()) == [1, 2, 3]
    assert len(history) == 3 * 6
    np.testing.assert_allclose(history["gap"], history["val_loss"] - history["train_loss"])

    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"]["kind"] == "images"
    assert summary["dataset"]["n_samples"] == 90
    assert summary["dataset"]["n_classes"] == 3
    assert summary["dataset"]["classes"] == ["0", "1", "7"]
    assert {"steep", "slope", "regime", "epochs"} <= set(summary["gap"])
    assert summary["audit"]["ran"] is True
    assert summary["audit"]["n_flagged"] == int(issues["is_label_issue"].sum())
    # The estimate is the share flagged, so the report's count and rate agree.
    assert summary["audit"]["estimated_noise_rate"] == pytest.approx(
        summary["audit"]["n_flagged"] / 90)
    assert 0 <= summary["audit"]["joint_noise_rate"] <= 1  # cleanlab's, on the pooled probs
    assert list(issues.columns[6:]) == ["quality_cnn", "quality_knn", "quality_logreg",
                                        "quality_knn_embedding", "quality_dynamics",
                                        "flagged_by"]
    assert summary["settings"]["cv"] == 3 and summary["settings"]["seed"] == 0
    assert {"load", "folds", "total"} <= set(summary["timings"])  # always: no monitor stage
    assert summary["version"]
    assert (out / "report.html").stat().st_size > 0


def test_scan_table_and_text(tmp_path, table_csv, text_csv, fast):
    table = scan(table_csv, fast)
    assert table.dataset.kind == "tabular"
    assert table.issues["id"].str.fullmatch(r"\d+").all()
    text = scan(text_csv, replace(fast, label_column="topic"))
    assert text.dataset.kind == "text"
    assert len(text.issues) == 120
    # The generated topics are separable: out-of-fold accuracy must be high.
    assert text.audit["accuracy_out_of_fold"] > 0.9


def test_audit_never_writes_no_issues_and_says_why(tmp_path, table_csv):
    out = tmp_path / "r"
    result = run("scan", table_csv, "--out", out, "--audit", "never", *FAST, "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["audit"]["ran"] is False
    assert "--audit never" in summary["audit"]["reason"]
    assert not (out / "issues.csv").exists()
    assert (out / "history.csv").exists() and (out / "report.html").exists()
    assert pd.read_csv(out / "history.csv")["fold"].unique().tolist() == [1]


def test_json_prints_exactly_one_document_on_stdout(tmp_path, table_csv):
    out = tmp_path / "r"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "labelaudit"), "scan", str(table_csv), "--out",
         str(out), "--audit", "always", *FAST, "--json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # nothing else on stdout
    assert summary == json.loads((out / "summary.json").read_text())
    assert "labelaudit scan" in proc.stderr  # the people's summary went to stderr


def test_exit_code_1_when_fail_above_trips(tmp_path, table_csv):
    frame = pd.read_csv(table_csv)
    noisy, _ = make_table(noise_rate=0.3)
    frame["label"] = noisy["label"]
    frame.to_csv(table_csv, index=False)
    out = tmp_path / "r"
    tripped = run("scan", table_csv, "--out", out, "--audit", "always", *FAST, "-q",
                  "--fail-above", "0.01")
    assert tripped.exit_code == 1
    assert "above --fail-above" in tripped.output
    assert (out / "issues.csv").exists()  # the report is still written
    passed = run("scan", table_csv, "--out", out, "--audit", "always", *FAST, "-q",
                 "--fail-above", "0.99")
    assert passed.exit_code == 0


def test_filter_by_chooses_cleanlabs_rule_and_keeps_the_ranking(tmp_path, table_csv):
    frame = pd.read_csv(table_csv)
    frame["label"] = make_table(noise_rate=0.2)[0]["label"]
    frame.to_csv(table_csv, index=False)
    flagged = {}
    for rule in ("prune_by_noise_rate", "predicted_neq_given"):
        out = tmp_path / rule
        result = run("scan", table_csv, "--out", out, "--audit", "always", *FAST, "-q",
                     "--filter-by", rule)
        assert result.exit_code == 0, result.output
        summary = json.loads((out / "summary.json").read_text())
        assert summary["audit"]["filter_by"] == summary["settings"]["filter_by"] == rule
        flagged[rule] = pd.read_csv(out / "issues.csv", dtype={"id": str})
    default, neq = flagged["prune_by_noise_rate"], flagged["predicted_neq_given"]
    assert list(default["id"]) == list(neq["id"])  # the ranking does not depend on the rule
    # Each member's own rule votes: with predicted_neq_given a member flags exactly the samples
    # where it prefers another class (its own normalized margin below 0.5), and a sample is
    # flagged when at least half of the members do.
    members = [c.removeprefix("quality_") for c in neq.columns if c.startswith("quality_")
               and c != "quality_dynamics"]  # the training dynamics rank but do not vote
    assert members == ["mlp", "knn", "logreg", "knn_embedding"]
    doubting = neq[[f"quality_{m}" for m in members]].to_numpy() < 0.5
    flagged_by = neq["flagged_by"].fillna("").str.split(";")
    assert [[m for m, d in zip(members, row, strict=True) if d] for row in doubting] == \
        [[m for m in names if m] for names in flagged_by]
    assert (neq["is_label_issue"] == (doubting.sum(1) >= 2)).all()
    assert neq["is_label_issue"].any() and not default["is_label_issue"].equals(
        neq["is_label_issue"])
    bad = run("scan", table_csv, "--out", tmp_path / "bad", "--filter-by", "lowest")
    assert bad.exit_code == 2 and "--filter-by" in bad.output
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("args, words", [
    (["--cv", "1"], "--cv must be at least 2"),
    (["--fail-above", "3"], "--fail-above must be a rate"),
    (["--label-column", "lable"], "no column 'lable'"),
])
def test_exit_code_2_on_bad_usage(tmp_path, table_csv, args, words):
    out = tmp_path / "r"
    result = run("scan", table_csv, "--out", out, *args)
    assert result.exit_code == 2
    assert words in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


# -- recall on injected noise ---------------------------------------------------------------------


def _precision_recall(issues: pd.DataFrame, truth: pd.DataFrame) -> tuple[float, float]:
    merged = issues.merge(truth, on="id")
    noisy = merged["true_label"] != merged["given_label_y"]
    flagged = merged["is_label_issue"]
    hits = (noisy & flagged).sum()
    return hits / max(1, flagged.sum()), hits / max(1, noisy.sum())


def test_recall_on_injected_noise_small_table(tmp_path):
    frame, true = make_table(n=300, noise_rate=0.15, seed=3)
    path = tmp_path / "noisy.csv"
    frame.to_csv(path, index=False)
    result = scan(path, ScanSettings(epochs=10, cv=3, audit="always"))
    truth = pd.DataFrame({"id": np.arange(len(true)).astype(str),
                          "true_label": np.array(["alpha", "beta", "gamma"])[true],
                          "given_label": frame["label"]})
    precision, recall = _precision_recall(result.issues, truth)
    assert recall >= 0.7 and precision >= 0.7, (precision, recall)


@pytest.mark.slow
def test_demo_digits_noisy_flags_injected_errors(tmp_path):
    """The issue's acceptance check: precision and recall >= 0.8 on the shipped noisy digits."""
    out = tmp_path / "r"
    result = run("scan", DATASETS / "digits-noisy", "--out", out, "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gap"]["steep"] is True and summary["audit"]["ran"] is True
    issues = pd.read_csv(out / "issues.csv", dtype={"id": str})
    truth = pd.read_csv(DATASETS / "digits-noisy.truth.csv", dtype={"id": str})
    precision, recall = _precision_recall(issues, truth)
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)


@pytest.mark.slow
def test_demo_clean_twin_does_not_trigger_the_audit(tmp_path):
    out = tmp_path / "r"
    result = run("scan", DATASETS / "digits-clean", "--out", out, "-q", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["gap"]["steep"] is False
    assert summary["audit"]["ran"] is False
    assert not (out / "issues.csv").exists()


def test_readme_commands_match_ci():
    """README's test command is the one .ci/run runs, so the docs cannot drift from CI."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "bash scripts/setup.sh --dev && .venv/bin/python -m pytest -q"
    assert command in readme and command in ci
    assert "bash scripts/setup.sh && .venv/bin/labelaudit scan datasets/digits-noisy" in readme


def test_rescan_with_reviewed_decisions_lists_only_new_work(tmp_path):
    frame, _ = make_table(n=150, noise_rate=0.2, seed=1)
    path = tmp_path / "noisy.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "r"
    assert run("scan", path, "--out", out, "--audit", "always", *FAST, "-q").exit_code == 0
    first = pd.read_csv(out / "issues.csv", dtype={"id": str})
    flagged = first[first["is_label_issue"]]
    assert len(flagged) >= 3
    decisions = pd.DataFrame({"id": flagged["id"][:2], "given_label": flagged["given_label"][:2],
                              "decision": ["keep", "remove"], "new_label": ["", ""]})
    decisions.to_csv(tmp_path / "decisions.csv", index=False)
    again = run("scan", path, "--out", out, "--audit", "always", *FAST, "-q",
                "--reviewed", tmp_path / "decisions.csv")
    assert again.exit_code == 0, again.output
    second = pd.read_csv(out / "issues.csv", dtype={"id": str}).set_index("id")
    reviewed = list(decisions["id"])
    assert second.loc[reviewed, "reviewed"].all()
    assert not second.loc[reviewed, "is_label_issue"].any()
    assert second.loc[reviewed, "rank"].isna().all()
    assert int(second["is_label_issue"].sum()) == len(flagged) - 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["audit"]["n_reviewed"] == 2
    assert summary["settings"]["reviewed"].endswith("decisions.csv")


def test_reviewed_file_with_wrong_columns_is_refused_before_training(tmp_path, table_csv):
    bad = tmp_path / "decisions.csv"
    bad.write_text("identifier,verdict\n1,keep\n")
    result = run("scan", table_csv, "--out", tmp_path / "r", "--reviewed", bad)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
