"""Hostile input, one table: every case exits with the code it promises and says why.

Exit 1 belongs to a tripped --fail-above gate alone; bad input is 2, a labelaudit bug 3.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit.cli import app

from .test_bad_input import image_folder, snapshot

runner = CliRunner()
FAST = ["--epochs", "2", "--cv", "2", "--quiet"]


def _table(root: Path, n: int = 30) -> Path:
    rng = np.random.default_rng(0)
    path = root / "data.csv"
    pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n),
                  "label": ["a", "b", "c"] * (n // 3)}).to_csv(path, index=False)
    return path


def _images(root: Path) -> Path:
    return image_folder(root / "images")


def _symlink_loop(root: Path) -> Path:
    data = _images(root)
    os.symlink("b.png", data / "cat" / "a.png")
    os.symlink("a.png", data / "cat" / "b.png")
    return data


def _parquet_lists(root: Path) -> Path:
    path = root / "data.parquet"
    pd.DataFrame({"x": [[1, 2], [3], [4, 5]] * 10, "label": ["a", "b", "c"] * 10}).to_parquet(path)
    return path


def _parquet_structs(root: Path) -> Path:
    path = root / "data.parquet"
    pd.DataFrame({"x": [{"a": 1}, {"a": 2}, {"a": 3}] * 10,
                  "label": ["a", "b", "c"] * 10}).to_parquet(path)
    return path


def _parquet_bad_utf8(root: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = root / "data.parquet"
    text = pa.array([b"ok", b"\xff\xfe bad", b"fine"] * 10, type=pa.binary())
    # A string column whose bytes are not UTF-8, as some writers produce.
    table = pa.table({"x": text.cast(pa.string(), safe=False), "y": list(range(30)),
                      "label": ["a", "b", "c"] * 10})
    pq.write_table(table, path)
    return path


def _duplicate_columns(root: Path) -> Path:
    path = root / "data.csv"
    rows = "\n".join(f"{i},{i % 3},x{i % 2}" for i in range(30))
    path.write_text("x,label,label\n" + rows + "\n")
    return path


def _empty_log(root: Path) -> Path:
    path = root / "metrics.csv"
    path.write_text("")
    return path


def _blank_log(root: Path) -> Path:
    path = root / "metrics.csv"
    path.write_text("\n  \n\n")
    return path


def _keras_strings(root: Path) -> Path:
    path = root / "history.json"
    path.write_text(json.dumps({"loss": ["0.9", "abc", "0.5"], "val_loss": [1.0, 0.9, 0.8]}))
    return path


def _keras_log(root: Path) -> Path:
    path = root / "history.json"
    path.write_text(json.dumps({"loss": [0.9, 0.7, 0.5, 0.4], "val_loss": [1.0, 0.9, 0.8, 0.8]}))
    return path


def _a_file(root: Path) -> Path:
    path = root / "a-file"
    path.write_text("not a folder\n")
    return path


# (name, make the input, the command after the input path, words the message must hold)
CASES = [
    ("file symlink loop, --strict", _symlink_loop, ["scan", "{data}", *FAST, "--strict"],
     ["symlink loop"]),
    ("parquet column of lists", _parquet_lists, ["scan", "{data}", *FAST], ["'x'"]),
    ("parquet column of structs", _parquet_structs, ["scan", "{data}", *FAST], ["'x'"]),
    ("parquet text that is not UTF-8", _parquet_bad_utf8, ["scan", "{data}", *FAST], ["UTF-8"]),
    ("duplicate column names", _duplicate_columns, ["scan", "{data}", *FAST], ["'label'"]),
    ("--seed -1", _table, ["scan", "{data}", *FAST, "--seed", "-1"], ["--seed"]),
    ("--seed 2**32", _table, ["scan", "{data}", *FAST, "--seed", "4294967296"], ["--seed"]),
    ("selftest --seed -1", _table, ["selftest", "{data}", *FAST, "--seed", "-1"], ["--seed"]),
    ("--image-size 100000", _images, ["scan", "{data}", *FAST, "--image-size", "100000"],
     ["--image-size"]),
    ("--out under a file", _table, ["scan", "{data}", *FAST, "--out", "{file}/report"],
     ["--out"]),
    ("--cache naming a file", _table, ["scan", "{data}", *FAST, "--cache", "{file}"],
     ["--cache"]),
    ("--cache inside the dataset", _images, ["scan", "{data}", *FAST, "--cache",
                                             "{data}/cat/cache"], ["--cache"]),
    ("dask scheduler without a scheme or port", _table,
     ["scan", "{data}", *FAST, "--backend", "dask", "--scheduler", "bogus"], ["bogus"]),
    ("gap on an empty csv", _empty_log, ["gap", "{data}", "-q"], ["empty"]),
    ("gap on a blank csv", _blank_log, ["gap", "{data}", "-q"], ["metrics.csv"]),
    ("gap on a Keras history with string losses", _keras_strings, ["gap", "{data}", "-q"],
     ["'loss'"]),
    ("gap --plot under a file", _keras_log, ["gap", "{data}", "-q", "--plot", "{file}/x.svg"],
     ["x.svg"]),
]


@pytest.mark.parametrize("name,make,command,words", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_refused_with_exit_2(tmp_path, name, make, command, words):
    data = make(tmp_path)
    file = _a_file(tmp_path)
    args = [a.format(data=data, file=file) for a in command]
    if "--out" not in args and args[0] == "scan":
        args += ["--out", str(tmp_path / "report")]
    before = snapshot(data)
    result = runner.invoke(app, args)
    message = " ".join(result.output.split())
    assert result.exit_code == 2, (name, result.output, result.exception)
    assert message.startswith("error: "), message
    assert "Traceback" not in result.output
    for word in words:
        assert word in message, (word, message)
    assert snapshot(data) == before  # the input is never modified
    assert file.read_text() == "not a folder\n"


def test_an_escaping_exception_is_an_internal_error_with_exit_3(tmp_path, monkeypatch):
    import labelaudit.logs

    def broken(*args, **kwargs):
        raise ZeroDivisionError("something inside broke\nsecond line")

    monkeypatch.setattr(labelaudit.logs, "diagnose_log", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    result = runner.invoke(app, ["gap", str(_keras_log(tmp_path)), "-q"])
    assert result.exit_code == 3
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("internal error: ZeroDivisionError: something inside broke")
    saved = list(tmp_path.glob("labelaudit-error-*.txt"))
    assert len(saved) == 1 and str(saved[0]) in lines[0]
    assert "Traceback" in saved[0].read_text() and "broken" in saved[0].read_text()


def test_the_fail_above_gate_keeps_exit_1(tmp_path):
    data = _table(tmp_path, n=60)
    result = runner.invoke(app, ["scan", str(data), "--out", str(tmp_path / "r"), *FAST,
                                 "--audit", "always", "--fail-above", "0", "--no-cache"])
    assert result.exit_code == 1, result.output
    assert "above --fail-above" in result.output
