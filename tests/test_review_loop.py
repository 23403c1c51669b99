"""The review loop a reviewer can trust: scan a shipped demo, decide on the flagged samples in
report.html in a real browser, export, apply, re-scan the corrected copy with its change log:
every reviewed sample is recognised, none comes back flagged, and no sample is lost."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit.apply import ROW_COLUMN
from labelaudit.cli import app
from labelaudit.data import read_table

from . import test_report_browser as shared
from .conftest import DATASETS

runner = CliRunner()
# The browser is the report tests' own fixture.
browser, watched, rows = shared.browser, shared.watched, shared.rows
FAST = ["--epochs", "4", "--cv", "2", "--audit", "always", "-q", "--no-cache"]


def scan(path, out, *extra):
    result = runner.invoke(app, ["scan", str(path), "--out", str(out), *FAST, *extra])
    assert result.exit_code == 0, result.output
    issues = pd.read_csv(out / "issues.csv", dtype={"id": str, "given_label": str,
                                                    "suggested_label": str},
                         keep_default_na=False)
    return issues, json.loads((out / "summary.json").read_text())


def review_in_browser(watched, report, saved) -> pd.DataFrame:
    """What a reviewer does on the five most likely errors, by keyboard: relabel three to the
    suggestion, remove one, keep one; then Export decisions."""
    page = watched.open(report)
    rows(page).nth(0).locator("td").first.click()
    for key in "sssxg":
        page.keyboard.press(key)
    assert "Reviewed 5 of" in page.inner_text("#progress")
    with page.expect_download(timeout=shared.DOWNLOAD_TIMEOUT_MS) as download:
        page.click("#export")
    download.value.save_as(saved)
    return pd.read_csv(saved, dtype=str, keep_default_na=False)


def _without_ids(tmp_path):
    frame = read_table(DATASETS / "wine-noisy.csv").drop(columns=["sample_id"])
    path = tmp_path / "wine-no-ids.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("demo", ["digits-noisy", "wine-noisy.csv", "breast-cancer-noisy.csv",
                                  "wine without ids"])
def test_scan_review_apply_rescan(watched, tmp_path, demo):
    if demo == "wine without ids":  # ids are row numbers, which removing a row would shift
        data = _without_ids(tmp_path)
    else:
        source = DATASETS / demo
        data = tmp_path / demo
        (shutil.copytree if source.is_dir() else shutil.copy)(source, data)
    first, summary = scan(data, tmp_path / "first")
    decisions = review_in_browser(watched, tmp_path / "first" / "report.html",
                                  tmp_path / "decisions.csv")
    assert decisions["decision"].tolist() == ["relabel"] * 3 + ["remove", "keep"]
    top = first.assign(rank=pd.to_numeric(first["rank"])).sort_values("rank").head(5)
    assert decisions["id"].tolist() == top["id"].tolist()
    assert decisions["new_label"].tolist()[:3] == top["suggested_label"].tolist()[:3]

    fixed = tmp_path / ("fixed" if data.is_dir() else f"fixed{data.suffix}")
    applied = runner.invoke(app, ["apply", str(data), str(tmp_path / "decisions.csv"), "--out",
                                  str(fixed)])
    assert applied.exit_code == 0, applied.output
    changes = fixed / "changes.csv" if data.is_dir() else tmp_path / "fixed.changes.csv"
    assert changes.is_file()
    if demo == "wine without ids":  # the copy keeps the original row numbers as its ids
        assert ROW_COLUMN in read_table(fixed).columns
    second, again = scan(fixed, tmp_path / "second", "--reviewed", str(changes))

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
