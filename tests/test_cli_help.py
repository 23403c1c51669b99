"""The command line's own surface: --version, --help at 80 columns, the default --out, the
stage lines and the fold bars people watch."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelaudit import __version__
from labelaudit.cli import app

from .conftest import make_table

runner = CliRunner()
ENTRY = str(Path(sys.executable).parent / "labelaudit")


def test_version_prints_the_package_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"labelaudit {__version__}\n"
    proc = subprocess.run([ENTRY, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("labelaudit ")


@pytest.mark.parametrize("command", ["scan", "apply", "gap", "selftest"])
def test_help_has_examples_and_fits_80_columns(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "Examples" in result.output
    assert f"labelaudit {command} " in result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    # Switches read as switches: no --no-* twin and no <bool> type beside our own options.
    assert not any("<bool>" in line for line in lines if "--help" not in line)
    assert "--no-strict" not in result.output and "--no-force" not in result.output


def test_apply_help_says_when_out_is_a_file():
    result = runner.invoke(app, ["apply", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert "fixed.changes.csv" in text and "folder" in text


def test_scan_writes_to_a_folder_named_after_the_dataset(tmp_path, monkeypatch):
    frame, _ = make_table(n=60)
    path = tmp_path / "data" / "wine-noisy.csv"
    path.parent.mkdir()
    frame.to_csv(path, index=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = runner.invoke(app, ["scan", str(path), "--epochs", "2", "--cv", "2", "--audit",
                                 "never"])
    assert result.exit_code == 0, result.output
    assert (work / "wine-noisy.labelaudit" / "report.html").is_file()
    assert not (work / "labelaudit-report").exists()
    # The stages are announced on stderr.
    assert "writing the report to wine-noisy.labelaudit" in result.stderr
    quiet = runner.invoke(app, ["scan", str(path), "--epochs", "2", "--cv", "2", "--audit",
                                "never", "-q", "--out", str(work / "q")])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_stages_between_the_monitor_and_the_summary_are_announced(tmp_path):
    frame, _ = make_table(n=90, noise_rate=0.3)
    path = tmp_path / "noisy.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["scan", str(path), "--out", str(tmp_path / "r"), "--epochs",
                                 "4", "--cv", "2", "--audit", "always", "--no-cache"])
    assert result.exit_code == 0, result.output
    stderr = result.stderr
    for stage in ("training all 2 folds (--audit always)",
                  "confident learning: ranking the likely label errors",
                  "writing the report to"):
        assert stage in stderr
    assert stderr.index("confident learning") < stderr.index("writing the report")


def test_a_fold_that_stops_early_completes_its_bar_with_a_note(tmp_path):
    from rich.console import Console

    from labelaudit.progress import Progress
    from labelaudit.scan import ScanSettings, scan

    frame, _ = make_table(n=90, noise_rate=0.3)
    path = tmp_path / "noisy.csv"
    frame.to_csv(path, index=False)
    buffer = io.StringIO()
    progress = Progress(console=Console(file=buffer, force_terminal=True, width=100),
                        log=lambda message: None)
    with progress.running():
        result = scan(path, ScanSettings(epochs=40, cv=2, audit="always", patience=1),
                      progress=progress)
    assert result.audit["ran"]
    bars = {t.description: (t.completed, t.total) for t in progress.tasks}
    assert {"fold 1", "fold 2"} <= {d.split(" (")[0] for d in bars}, bars
    for description, (completed, total) in bars.items():
        assert completed == total, description  # no bar is left frozen part-way
    assert any("stopped at epoch" in d for d in bars), bars  # patience 1 stops a fold early
    assert "stopped at epoch" in buffer.getvalue()
