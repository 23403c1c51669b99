"""The review loop a reviewer can trust (issue 19): scan a shipped demo, decide on the flagged
samples, apply, re-scan the corrected copy with its change log: every reviewed sample is
recognised, none comes back flagged, and no sample is lost."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit.apply import ROW_COLUMN
from labelaudit.cli import app
from labelaudit.data import read_table

from .conftest import DATASETS

runner = CliRunner()
FAST = ["--epochs", "4", "--cv", "2", "--audit", "always", "-q", "--no-cache"]


def scan(path, out, *extra):
    result = runner.invoke(app, ["scan", str(path), "--out", str(out), *FAST, *extra])
    assert result.exit_code == 0, result.output
    issues = pd.read_csv(out / "issues.csv", dtype={"id": str, "given_label": str,
                                                    "suggested_label": str},
                         keep_default_na=False)
    return issues, json.loads((out / "summary.json").read_text())


def decide(issues) -> pd.DataFrame:
    """What a reviewer might decide on the most likely errors: relabel three to the
    suggestion, remove one, keep one."""
    top = issues.sort_values("label_quality").head(5)
    decision = ["relabel", "relabel", "relabel", "remove", "keep"]
    return pd.DataFrame({
        "id": top["id"], "given_label": top["given_label"], "decision": decision,
        "new_label": [s if d == "relabel" else "" for s, d in zip(top["suggested_label"],
                                                                 decision, strict=True)]})


def _without_ids(tmp_path):
    frame = read_table(DATASETS / "wine-noisy.csv").drop(columns=["sample_id"])
    path = tmp_path / "wine-no-ids.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("demo", ["digits-noisy", "wine-noisy.csv", "breast-cancer-noisy.csv",
                                  "wine without ids"])
def test_scan_review_apply_rescan(tmp_path, demo):
    if demo == "wine without ids":  # ids are row numbers, which removing a row would shift
        data = _without_ids(tmp_path)
    else:
        source = DATASETS / demo
        data = tmp_path / demo
        (shutil.copytree if source.is_dir() else shutil.copy)(source, data)
    first, summary = scan(data, tmp_path / "first")
    decisions = decide(first)
    decisions.to_csv(tmp_path / "decisions.csv", index=False)

    fixed = tmp_path / ("fixed" if data.is_dir() else f"fixed{data.suffix}")
    applied = runner.invoke(app, ["apply", str(data), str(tmp_path / "decisions.csv"), "--out",
                                  str(fixed)])
    assert applied.exit_code == 0, applied.output
    changes = fixed / "changes.csv" if data.is_dir() else tmp_path / "fixed.changes.csv"
    assert changes.is_file()
    extra = []
    if not data.is_dir() and ROW_COLUMN in read_table(fixed).columns:
        extra = ["--id-column", ROW_COLUMN]  # also found without it once the loader detects it
    second, again = scan(fixed, tmp_path / "second", "--reviewed", str(changes), *extra)

    removed = int((decisions["decision"] == "remove").sum())
    assert again["dataset"]["n_samples"] == summary["dataset"]["n_samples"] - removed
    assert again["audit"]["n_reviewed"] == len(decisions) - removed
    reviewed = second[second["reviewed"]]
    assert len(reviewed) == len(decisions) - removed
    assert not reviewed["is_label_issue"].any()
    # Each reviewed sample is the one decided on, with the label decided.
    ids = dict(zip(first["id"], first["id"], strict=True))
    if data.is_dir():
        moved = pd.read_csv(changes, dtype=str, keep_default_na=False)
        ids = {new or old: old for old, new in zip(moved["id"], moved["new_path"], strict=True)}
    wanted = {row.id: (row.new_label or row.given_label) for row in decisions.itertuples()
              if row.decision != "remove"}
    got = {ids.get(i, i): label for i, label in zip(reviewed["id"], reviewed["given_label"],
                                                    strict=True)}
    assert got == wanted
