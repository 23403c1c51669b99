"""Hostile training logs and plot paths: each is refused with exit 2 and a message, never a crash.

Exit 1 is reserved for a tripped --fail-above gate, so a crash must never look like one.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit.cli import app
from labelaudit.errors import UsageError
from labelaudit.logs import diagnose_log, read_log
from labelaudit.plot import check_plot_path

LOGS = Path(__file__).parent / "data" / "logs"
runner = CliRunner()


def refused(*args) -> str:
    """Run `labelaudit gap ARGS`; assert a clean refusal (exit 2, no traceback); return stderr."""
    result = runner.invoke(app, ["gap", *map(str, args)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert result.stdout == ""
    return result.stderr


def keras_rows(n=12):
    """A Keras CSVLogger table of n epochs (0-based), a plainly converging run."""
    return pd.DataFrame({"epoch": range(n), "loss": [1 / (e + 1) for e in range(n)],
                         "val_loss": [1.1 / (e + 1) + 0.05 for e in range(n)]})


# --- 1. empty and blank tables ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n", "  \n\n \t\n", "\r\n\r\n"])
def test_an_empty_or_blank_csv_is_refused(tmp_path, text):
    path = tmp_path / "log.csv"
    path.write_text(text)
    message = refused(path)
    assert "is empty" in message and "epoch" in message  # says what a log should hold


@pytest.mark.parametrize("header", ["epoch,loss,val_loss\n", "epoch,loss,val_loss\n\n\n",
                                    "Epoch,Train Loss,Validation Loss\n"])
def test_a_header_without_rows_is_refused(tmp_path, header):
    path = tmp_path / "log.csv"
    path.write_text(header)
    message = refused(path)
    assert "no rows" in message and "loss" in message.lower()


def test_a_single_column_table_is_read_as_a_table(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("loss\n0.5\n0.4\n0.3\n")
    with pytest.raises(UsageError, match="validation loss"):
        read_log(path)


# --- 2. losses that are strings --------------------------------------------------------------


def test_keras_history_with_numeric_strings_reads_as_numbers(tmp_path):
    frame = keras_rows()
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"loss": [str(v) for v in frame["loss"]],
                                "val_loss": [f" {v} " for v in frame["val_loss"]]}))
    history = read_log(path)
    assert history["train_loss"].tolist() == pytest.approx(frame["loss"].tolist())
    assert history["val_loss"].tolist() == pytest.approx(frame["val_loss"].tolist())


@pytest.mark.parametrize("loss, bad", [(["0.5", "abc"], "'abc'"), ([0.5, [0.4]], "[0.4]"),
                                       ([0.5, {"v": 1}], "{'v': 1}"), ([0.5, True], "True")])
def test_keras_history_with_a_non_number_names_the_key(tmp_path, loss, bad):
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"loss": loss, "val_loss": [0.4, 0.5]}))
    message = refused(path)
    assert "'loss'" in message and bad in message and "epoch 2" in message


def test_keras_history_nulls_are_missing_values_not_errors(tmp_path):
    path = tmp_path / "history.json"
    frame = keras_rows()
    loss = frame["loss"].tolist()
    loss[3] = None
    path.write_text(json.dumps({"loss": loss, "val_loss": frame["val_loss"].tolist()}))
    history = read_log(path)
    assert len(history) == len(frame) and history["train_loss"].isna().tolist() == [
        i == 3 for i in range(len(frame))]


def test_keras_csv_with_a_non_number_names_the_column(tmp_path):
    frame = keras_rows().astype(object)
    frame.loc[4, "val_loss"] = "abc"
    path = tmp_path / "training.csv"
    frame.to_csv(path, index=False)
    message = refused(path)
    assert "'val_loss'" in message and "'abc'" in message


def test_keras_csv_with_numeric_strings_and_nan_reads(tmp_path):
    frame = keras_rows().astype(object)
    frame.loc[2, "loss"] = "nan"  # what Keras writes for a diverged batch
    path = tmp_path / "training.csv"
    frame.to_csv(path, index=False)
    assert len(read_log(path)) == len(frame)


@pytest.mark.parametrize("name, make", [
    ("skorch_history.json", lambda: [{"epoch": 1, "train_loss": "abc", "valid_loss": 0.5},
                                     {"epoch": 2, "train_loss": 0.4, "valid_loss": 0.5}]),
    ("trainer_state.json", lambda: {"log_history": [
        {"epoch": 1.0, "step": 10, "loss": "abc"},
        {"epoch": 1.0, "step": 10, "eval_loss": 0.5}]}),
])
def test_other_json_logs_with_a_non_number_name_the_key(tmp_path, name, make):
    path = tmp_path / name
    path.write_text(json.dumps(make()))
    assert "'abc'" in refused(path)


def test_a_fold_column_that_is_not_whole_numbers_is_refused(tmp_path):
    frame = keras_rows().rename(columns={"loss": "train_loss"})
    frame.insert(0, "fold", "a")
    path = tmp_path / "history.csv"
    frame.to_csv(path, index=False)
    assert "'fold'" in refused(path)


# --- 3. plot paths ---------------------------------------------------------------------------


def test_plot_under_a_file_is_refused_before_the_log_is_read(tmp_path, monkeypatch):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder")
    import labelaudit.logs

    monkeypatch.setattr(labelaudit.logs, "read_log", lambda *a, **k: pytest.fail("read"))
    for target in (blocker / "curves.svg", blocker / "deeper" / "curves.svg"):
        with pytest.raises(UsageError, match="is a file, not a folder"):
            diagnose_log(LOGS / "keras_log.csv", plot=target)
    assert blocker.read_text() == "not a folder"


def test_plot_under_a_file_via_the_cli(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("")
    message = refused(LOGS / "keras_log.csv", "--plot", blocker / "curves.svg")
    assert "is a file, not a folder" in message


def test_plot_in_a_missing_folder_is_refused_not_created(tmp_path):
    # A typo in --plot should not grow folders: the user creates them (the message says how).
    target = tmp_path / "missing" / "deeper" / "curves.svg"
    message = refused(LOGS / "keras_log.csv", "--plot", target)
    assert "does not exist" in message and "mkdir" in message
    assert not (tmp_path / "missing").exists()


def test_plot_onto_a_folder_is_refused(tmp_path):
    (tmp_path / "curves.svg").mkdir()
    assert "is a folder" in refused(LOGS / "keras_log.csv", "--plot", tmp_path / "curves.svg")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only folders; permission bits need a user")
def test_plot_in_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        message = refused(LOGS / "keras_log.csv", "--plot", folder / "curves.svg")
    finally:
        folder.chmod(stat.S_IRWXU)
    assert "cannot write" in message and str(folder) in message


def test_plot_in_a_folder_the_os_says_is_not_writable_is_refused(tmp_path, monkeypatch):
    # The same check as above where tests run as root: os.access answers as it would for a user
    # (and answers no for a read-only file system even to root).
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    message = refused(LOGS / "keras_log.csv", "--plot", tmp_path / "curves.svg")
    assert "no permission to write in the folder" in message
    assert list(tmp_path.iterdir()) == []


def test_a_failed_plot_write_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    # The write itself can still fail (disk full, a folder removed meanwhile): no half file.
    def full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    message = refused(LOGS / "keras_log.csv", "--plot", tmp_path / "curves.svg")
    assert "No space left on device" in message
    assert list(tmp_path.iterdir()) == []


def test_check_plot_path_accepts_a_writable_folder(tmp_path):
    assert check_plot_path(tmp_path / "c.svg") == tmp_path / "c.svg"


def test_a_diverged_log_near_floats_maximum_still_plots(tmp_path):
    # matplotlib cannot scale an axis to 1e308 (singular matrix): such points are left out.
    frame = keras_rows()
    frame.loc[5:, "loss"] = 1.7e308
    path = tmp_path / "training.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["gap", str(path), "--plot", str(tmp_path / "c.svg"), "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.svg").read_text().startswith("<svg")
