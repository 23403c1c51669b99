"""Faults lose nothing: Ctrl-C, kill -9, a failed fold; the input is never written to."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit.cli import app
from labelaudit.errors import UsageError
from labelaudit.outputs import ASIDE, MANIFEST, STAGING, check_out, recover, staged
from labelaudit.scan import ScanSettings, scan

from .test_bad_input import image_folder, png, snapshot, table

runner = CliRunner()
QUICK = ["--epochs", "2", "--cv", "2", "--quiet"]
CLI = [sys.executable, "-c", "from labelaudit.cli import app; app()"]
# The same CLI with early stopping off, so every fold trains all --epochs: a scan that trains for
# minutes. (With early stopping, --epochs 100000 on a tiny table ends within seconds, and the
# interrupt raced the end of the scan.)
LONG_CLI = [sys.executable, "-c", "import functools, labelaudit.scan as s; "
            "s.ScanSettings = functools.partial(s.ScanSettings, patience=None, "
            "monitor_patience=None); from labelaudit.cli import app; app()"]


def leftovers(out: Path) -> list[str]:
    """Hidden staging or moved-aside folders next to --out."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def report_files(out: Path) -> dict:
    """The report as a person sees it (the fold cache, kept across runs, aside)."""
    return {k: v for k, v in snapshot(out).items() if "/cache" not in k[len(str(out)):]}


@pytest.fixture(scope="module")
def made_once(tmp_path_factory) -> tuple[Path, Path]:
    """A small table with one unlabelled row (its warning is a readiness cue), and a complete
    report of it; built once, copied for each test."""
    root = tmp_path_factory.mktemp("faults")
    frame = table(n=30)
    frame.loc[0, "label"] = None
    path = root / "data" / "table.csv"
    path.parent.mkdir()
    frame.to_csv(path, index=False)
    out = root / "report"
    result = runner.invoke(app, ["scan", str(path), "--out", str(out), "--audit", "always",
                                 *QUICK])
    assert result.exit_code == 0, result.output
    assert (out / "issues.csv").exists() and (out / MANIFEST).exists()
    return path, out


@pytest.fixture
def data(tmp_path, made_once) -> Path:
    shutil.copytree(made_once[0].parent, tmp_path / "data")
    return tmp_path / "data" / made_once[0].name


@pytest.fixture
def earlier(tmp_path, made_once) -> Path:
    """An earlier, complete report in --out."""
    shutil.copytree(made_once[1], tmp_path / "report")
    return tmp_path / "report"


def start_long_scan(data: Path, out: Path) -> subprocess.Popen:
    """Start a real `labelaudit scan` that trains for minutes; return once it is past loading."""
    # A shell without job control starts background commands with SIGINT ignored, and Python
    # keeps it ignored (as it should: nohup'd jobs ignore Ctrl-C). The scan under test gets the
    # default disposition a terminal gives it, wherever the test suite itself was started.
    proc = subprocess.Popen([*LONG_CLI, "scan", str(data), "--out", str(out), "--epochs",
                             "100000", "--cv", "2", "--audit", "always"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    line = proc.stderr.readline()  # blocks until the loader's warning: the data is loaded
    assert "warning: dropped 1 row(s)" in line, line + proc.stderr.read()
    time.sleep(5)  # past the imports, into training
    assert proc.poll() is None, "the scan ended before it could be interrupted"
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_interrupted_scan_keeps_the_earlier_report(tmp_path, data, earlier, sig):
    before_report, before_data = report_files(earlier), snapshot(data.parent)
    proc = start_long_scan(data, earlier)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, stderr
        assert "interrupted: no report was written" in stderr and "Traceback" not in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    assert report_files(earlier) == before_report  # every byte of the earlier report
    assert leftovers(earlier) == []
    assert snapshot(data.parent) == before_data

    # the next run publishes a new report and leaves nothing behind
    result = runner.invoke(app, ["scan", str(data), "--out", str(earlier), "--audit", "never",
                                 *QUICK])
    assert result.exit_code == 0, result.output
    assert not (earlier / "issues.csv").exists()  # no stale file from the earlier report
    assert json.loads((earlier / "summary.json").read_text())["audit"]["ran"] is False
    assert leftovers(earlier) == []


@pytest.mark.slow
def test_a_run_killed_while_writing_is_cleaned_up_by_the_next(tmp_path, data, earlier):
    before = report_files(earlier)
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from labelaudit.outputs import staged\n"
        "with staged(sys.argv[1]) as folder:\n"
        "    (folder / 'issues.csv').write_text('id,given_label\\n0,')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"), str(earlier)])
    assert killed.returncode == -signal.SIGKILL
    assert report_files(earlier) == before  # the half-written file never reached --out
    (left,) = leftovers(earlier)  # the dead run's staging folder, hidden beside --out
    assert left.startswith(STAGING.format(name="report", pid=""))

    result = runner.invoke(app, ["scan", str(data), "--out", str(earlier), *QUICK])
    assert result.exit_code == 0, result.output
    assert leftovers(earlier) == []
    assert json.loads((earlier / "summary.json").read_text())["dataset"]["n_samples"] == 29


def test_a_run_killed_between_the_two_renames_gets_its_report_back(tmp_path, earlier):
    before = report_files(earlier)
    # The moment in publish() after `out -> aside` and before `staging -> out`, in a real
    # process that then dies.
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from labelaudit.outputs import ASIDE\n"
        "out = Path(sys.argv[1])\n"
        "out.rename(out.parent / ASIDE.format(name=out.name, pid=os.getpid()))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"), str(earlier)])
    assert killed.returncode == -signal.SIGKILL
    assert not earlier.exists() and len(leftovers(earlier)) == 1
    (handled,) = recover(earlier)
    assert handled.name.startswith(ASIDE.format(name="report", pid=""))
    assert report_files(earlier) == before and leftovers(earlier) == []


def test_recover_leaves_a_live_runs_folders_alone(tmp_path):
    out = tmp_path / "report"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        staging = tmp_path / STAGING.format(name="report", pid=live.pid)
        staging.mkdir()
        assert recover(out) == [] and staging.exists()
    finally:
        live.kill()
        live.wait()
    assert [p.name for p in recover(out)] == [staging.name] and not staging.exists()


def test_a_failure_inside_staging_publishes_nothing(tmp_path, earlier):
    before = report_files(earlier)
    with pytest.raises(ZeroDivisionError):
        with staged(earlier) as folder:
            (folder / "summary.json").write_text("{}")
            raise ZeroDivisionError  # any failure while writing
    assert report_files(earlier) == before and leftovers(earlier) == []


def test_files_a_person_added_to_a_report_survive_the_next_run(tmp_path, data, earlier):
    (earlier / "my-notes.txt").write_text("checked rows 1-20")
    result = runner.invoke(app, ["scan", str(data), "--out", str(earlier), "--audit", "never",
                                 *QUICK])
    assert result.exit_code == 0, result.output
    assert (earlier / "my-notes.txt").read_text() == "checked rows 1-20"
    assert not (earlier / "issues.csv").exists()  # ours and stale: gone
    manifest = json.loads((earlier / MANIFEST).read_text())
    assert "my-notes.txt" not in manifest["files"] and "summary.json" in manifest["files"]


def test_check_out_accepts_a_new_an_empty_or_a_report_folder(tmp_path, data, earlier):
    check_out(tmp_path / "new", inputs=[data])
    (tmp_path / "empty").mkdir()
    check_out(tmp_path / "empty", inputs=[data])
    check_out(earlier, inputs=[data])
    (tmp_path / "only-cache" / "cache").mkdir(parents=True)
    check_out(tmp_path / "only-cache", inputs=[data])
    with pytest.raises(UsageError, match="holds the dataset"):
        check_out(tmp_path, inputs=[data])


# -- a failing fold ------------------------------------------------------------------------------


def test_a_diverging_fold_ends_the_run_without_a_report(tmp_path, data, earlier):
    """A learning rate of 1e30 makes real training overflow to NaN in the first fold."""
    before_report, before_data = report_files(earlier), snapshot(data.parent)
    result = runner.invoke(app, ["scan", str(data), "--out", str(earlier), "--lr", "1e30",
                                 "--epochs", "3", "--cv", "2", "--audit", "always", "--quiet"])
    assert result.exit_code == 2, result.output
    words = " ".join(result.output.split())
    assert "fold 1 failed: training diverged" in words and "lower --lr" in words
    assert "no report was written" in words and "Traceback" not in words
    assert report_files(earlier) == before_report and leftovers(earlier) == []
    assert snapshot(data.parent) == before_data


def test_a_diverging_fold_raises_in_the_library_too(data):
    with pytest.raises(UsageError, match="training diverged"):
        scan(data, ScanSettings(epochs=2, cv=2, audit="always", lr=1e30))


# -- the input is read-only ----------------------------------------------------------------------


@pytest.mark.slow
def test_scan_leaves_an_image_folder_byte_for_byte_unchanged(tmp_path):
    root = image_folder(tmp_path / "data" / "imgs", n=8)
    png(tmp_path / "data" / "outside.png")
    os.symlink(tmp_path / "data" / "outside.png", root / "cat" / "link.png")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n")
    (root / "dog" / "empty.png").write_bytes(b"")
    (root / "dog" / "readme.md").write_text("# notes")
    os.utime(root / "cat" / "000.png", (1_000_000_000, 1_000_000_000))
    before = snapshot(tmp_path / "data")
    mtime = os.stat(root / "cat" / "000.png").st_mtime
    result = runner.invoke(app, ["scan", str(root), "--out", str(tmp_path / "report"),
                                 "--audit", "always", *QUICK])
    assert result.exit_code == 0, result.output
    assert snapshot(tmp_path / "data") == before
    assert os.stat(root / "cat" / "000.png").st_mtime == mtime


def test_scan_leaves_a_table_and_its_folder_unchanged(tmp_path, data):
    for suffix in (".parquet", ".jsonl"):
        frame = pd.read_csv(data)
        other = data.with_suffix(suffix)
        frame.to_parquet(other) if suffix == ".parquet" else frame.to_json(
            other, orient="records", lines=True)
    before = snapshot(data.parent)
    for path in sorted(data.parent.iterdir()):
        result = runner.invoke(app, ["scan", str(path), "--out", str(tmp_path / "report"),
                                     "--audit", "always", *QUICK])
        assert result.exit_code == 0, result.output
    assert snapshot(data.parent) == before
