"""Bad input is refused: a clear message, exit 2, no traceback, nothing written, input intact."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit.cli import app
from labelaudit.data import load_dataset

runner = CliRunner()


def snapshot(path: Path) -> dict:
    """Every entry under `path` (or `path` itself): file bytes (sha256), symlink targets, modes."""
    path = Path(path)
    if not os.path.lexists(path):
        return {}
    entries = [path] + (sorted(path.rglob("*")) if path.is_dir() and not path.is_symlink()
                        else [])
    state = {}
    for p in entries:
        st = os.lstat(p)
        if p.is_symlink():
            state[str(p)] = ("link", os.readlink(p))
        elif p.is_dir():
            state[str(p)] = ("dir", st.st_mode)
        else:
            state[str(p)] = ("file", st.st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
    return state


def png(path: Path, value: int = 0, size=(8, 8), mode: str = "L") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, dtype=np.uint8), mode=mode).save(path)


def image_folder(root: Path, classes=("cat", "dog"), n: int = 6) -> Path:
    for c, name in enumerate(classes):
        for i in range(n):
            png(root / name / f"{i:03d}.png", value=40 * c + i)
    return root


def table(n: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": [f"s{i}" for i in range(n)], "x": rng.normal(size=n),
                         "z": rng.normal(size=n), "label": ["a", "b", "c"] * (n // 3)})


def refused(tmp_path: Path, data: Path, *extra, out: Path | None = None) -> str:
    """Run `labelaudit scan`, assert a clean refusal that wrote nothing; return the message."""
    out = tmp_path / "report" if out is None else out
    before, around = snapshot(data), sorted(os.listdir(out.parent)) if out.parent.exists() \
        else None
    out_before = snapshot(out)
    result = runner.invoke(app, ["scan", str(data), "--out", str(out), "--epochs", "2", "--cv",
                                 "2", "--quiet", *map(str, extra)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit, not a crash
    assert "Traceback" not in result.output
    assert result.output.startswith("error: ")
    assert snapshot(out) == out_before  # not created, and an existing --out left alone
    if around is not None:
        assert sorted(os.listdir(out.parent)) == around  # no staging folder left beside --out
    assert snapshot(data) == before
    return " ".join(result.output.split())  # rich may wrap long paths; compare words


# -- paths and folders ---------------------------------------------------------------------------


def test_missing_path(tmp_path):
    message = refused(tmp_path, tmp_path / "no-such-folder")
    assert "no such file or folder" in message and "check the path" in message


def test_brackets_in_a_message_are_printed_as_they_are(tmp_path):
    name = "[red]labels[dask].csv"  # rich markup in a file name must not be interpreted
    assert f"{name}: no such file or folder" in refused(tmp_path, tmp_path / name)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    message = refused(tmp_path, tmp_path / "empty")
    assert "the folder is empty" in message and "class subfolders" in message


def test_folder_without_class_subfolders(tmp_path):
    png(tmp_path / "flat" / "a.png")
    png(tmp_path / "flat" / "b.png")
    message = refused(tmp_path, tmp_path / "flat")
    assert "no class subfolders found" in message and "cat/001.png" in message


def test_class_subfolders_without_images(tmp_path):
    (tmp_path / "docs" / "a").mkdir(parents=True)
    (tmp_path / "docs" / "a" / "readme.txt").write_text("hello")
    (tmp_path / "docs" / "b").mkdir()
    message = refused(tmp_path, tmp_path / "docs")
    assert "no images found" in message and ".png" in message


def test_one_class_only(tmp_path):
    root = image_folder(tmp_path / "one", classes=("cat",))
    message = refused(tmp_path, root)
    assert "only one class ('cat')" in message and "at least two" in message


def test_only_one_class_left_after_skipping_unreadable_files(tmp_path):
    root = image_folder(tmp_path / "imgs", classes=("cat",))
    (root / "dog").mkdir()
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    message = refused(tmp_path, root)
    assert "only one class ('cat')" in message


def test_out_inside_the_input_folder(tmp_path):
    root = image_folder(tmp_path / "imgs")
    message = refused(tmp_path, root, out=root / "cat" / "report")
    assert "is inside the dataset folder" in message and "choose a folder outside it" in message
    assert not (root / "cat" / "report").exists()


def test_out_equal_to_the_input_folder(tmp_path):
    root = image_folder(tmp_path / "imgs")
    message = refused(tmp_path, root, out=root)
    assert "is inside the dataset folder" in message


def test_out_holding_the_input_table(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    table().to_csv(folder / "data.csv", index=False)
    message = refused(tmp_path, folder / "data.csv", out=folder)
    assert "holds the dataset file" in message


def test_out_that_is_someone_elses_folder(tmp_path):
    data = tmp_path / "data.csv"
    table().to_csv(data, index=False)
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("precious")
    before = snapshot(mine)
    message = refused(tmp_path, data, out=mine)
    assert "neither empty nor an earlier labelaudit report" in message
    assert snapshot(mine) == before


def test_out_that_is_a_file(tmp_path):
    data = tmp_path / "data.csv"
    table().to_csv(data, index=False)
    (tmp_path / "out.txt").write_text("keep me")
    message = refused(tmp_path, data, out=tmp_path / "out.txt")
    assert "exists and is not a folder" in message
    assert (tmp_path / "out.txt").read_text() == "keep me"


# -- tables --------------------------------------------------------------------------------------


def test_csv_without_a_label_column_lists_the_columns(tmp_path):
    data = tmp_path / "data.csv"
    table().rename(columns={"label": "lable"}).to_csv(data, index=False)
    message = refused(tmp_path, data)
    assert "no label column found" in message
    assert "columns: id, x, z, lable" in message and "--label-column" in message


def test_misspelled_label_column_lists_the_columns(tmp_path):
    data = tmp_path / "data.csv"
    table().to_csv(data, index=False)
    message = refused(tmp_path, data, "--label-column", "labl")
    assert "no column 'labl'" in message and "columns: id, x, z, label" in message


def test_label_column_of_unique_values_looks_like_an_id(tmp_path):
    data = tmp_path / "data.csv"
    table().to_csv(data, index=False)
    message = refused(tmp_path, data, "--label-column", "id")
    assert "every value of 'id' is unique" in message and "looks like an id" in message


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_header_only_table(tmp_path, suffix):
    data = tmp_path / f"data{suffix}"
    empty = table().iloc[:0]
    if suffix == ".parquet":
        empty.to_parquet(data)
    elif suffix == ".jsonl":
        data.write_text("")  # a jsonl file has no header: empty is its header-only form
    else:
        empty.to_csv(data, index=False, sep="\t" if suffix == ".tsv" else ",")
    message = refused(tmp_path, data)
    assert "no rows" in message or "the file is empty" in message


def test_empty_csv_file(tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes(b"")
    assert "the file is empty" in refused(tmp_path, data)


def test_malformed_parquet(tmp_path):
    data = tmp_path / "data.parquet"
    table().to_parquet(data)
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated download
    message = refused(tmp_path, data)
    assert "cannot read it as parquet" in message and "valid parquet file" in message


def test_not_a_parquet_file_at_all(tmp_path):
    data = tmp_path / "data.parquet"
    data.write_text("id,label\n1,a\n")
    assert "cannot read it as parquet" in refused(tmp_path, data)


def test_malformed_jsonl(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"x": 1, "label": "a"}\n{"x": 2, "label": "b"}\n{"x": 3, "label": \n')
    message = refused(tmp_path, data)
    assert "cannot read it as jsonl" in message and "valid jsonl file" in message


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_text_that_is_not_utf8_names_the_encoding_option(tmp_path, suffix):
    frame = pd.DataFrame({"text": ["un café très crème, s'il vous plaît, garçon",
                                   "der Bär läuft über die Straße nach Hause"] * 10,
                          "label": ["fr", "de"] * 10})
    data = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        frame.to_csv(data, index=False, encoding="latin-1")
    else:
        frame.to_json(data, orient="records", lines=True, force_ascii=False)
        data.write_bytes(data.read_bytes().decode("utf-8").encode("latin-1"))
    message = refused(tmp_path, data)
    assert "cannot decode the file as utf-8" in message
    first_line = 2 if suffix == ".csv" else 1  # below the header; jsonl has none
    assert f"line {first_line}," in message and "--encoding" in message and "latin-1" in message
    # and the advice works
    ds = load_dataset(data, encoding="latin-1")
    assert ds.kind == "text" and ds.inputs[0] == "un café très crème, s'il vous plaît, garçon"


def test_unknown_encoding(tmp_path):
    data = tmp_path / "data.csv"
    table().to_csv(data, index=False)
    assert "is not a known text encoding" in refused(tmp_path, data, "--encoding", "klingon-8")


def test_duplicate_ids(tmp_path):
    data = tmp_path / "data.csv"
    frame = table()
    frame.loc[7, "id"] = "s3"
    frame.to_csv(data, index=False)
    message = refused(tmp_path, data, "--id-column", "id")
    assert "id column 'id' has duplicate values" in message and "'s3'" in message


def test_ids_that_differ_only_as_numbers_are_not_duplicates(tmp_path):
    data = tmp_path / "data.csv"
    frame = table(n=6)
    frame["id"] = ["7", "07", "007", "7.0", "x", "y"]  # distinct as written
    frame.to_csv(data, index=False)
    assert list(load_dataset(data, id_column="id").ids) == ["7", "07", "007", "7.0", "x", "y"]


def test_missing_ids(tmp_path):
    data = tmp_path / "data.csv"
    frame = table()
    frame.loc[4, "id"] = None
    frame.to_csv(data, index=False)
    message = refused(tmp_path, data, "--id-column", "id")
    assert "has empty values" in message and "row 4" in message


def test_unknown_id_column(tmp_path):
    data = tmp_path / "data.csv"
    table().to_csv(data, index=False)
    message = refused(tmp_path, data, "--id-column", "key")
    assert "no column 'key' for --id-column" in message


def test_no_feature_columns(tmp_path):
    data = tmp_path / "data.csv"
    table()[["id", "label"]].to_csv(data, index=False)
    assert "no feature columns" in refused(tmp_path, data, "--id-column", "id")


def test_unknown_file_type(tmp_path):
    data = tmp_path / "data.xlsx"
    data.write_bytes(b"PK\x03\x04")
    assert "not a folder and not a table" in refused(tmp_path, data)


# -- settings that cannot work -------------------------------------------------------------------


@pytest.mark.parametrize("option, value, words", [
    ("--cv", "1", "--cv must be at least 2"),
    ("--cv", "40", "--cv 40 is more than the largest class has samples (10)"),
    ("--epochs", "0", "--epochs must be at least 1"),
    ("--batch-size", "0", "--batch-size must be at least 1"),
    ("--lr", "0", "--lr must be a positive number"),
    ("--lr", "nan", "--lr must be a positive number"),
    ("--kind", "text", "no text column found"),
    ("--device", "gpu", "--device must be auto, cpu, cuda, cuda:N or mps, not 'gpu'"),
])
def test_settings_that_cannot_work(tmp_path, option, value, words):
    data = tmp_path / "data.csv"
    table().to_csv(data, index=False)
    # a later option wins in click, so these override refused()'s --epochs 2 --cv 2
    assert words in refused(tmp_path, data, option, value)


def test_a_gpu_torch_does_not_see(tmp_path):
    import torch

    data = tmp_path / "data.csv"
    table().to_csv(data, index=False)
    unseen = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, on any machine
    message = refused(tmp_path, data, "--device", unseen)
    assert f"--device {unseen}, but torch sees" in message
    assert "pass --device auto or cpu" in message


def test_image_size_too_small(tmp_path):
    root = image_folder(tmp_path / "imgs")
    assert "--image-size must be at least 4" in refused(tmp_path, root, "--image-size", "1")


# -- permissions ---------------------------------------------------------------------------------


def _drop_file_capabilities() -> None:
    """In a child about to exec: give up root's power to ignore file permissions."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _without_override(probe: Path, *command):
    """Run `labelaudit COMMAND...` where file permissions apply; None when they cannot apply.

    As root, chmod 000 denies nothing, so the CLI runs in a child process whose capability
    bounding set lacks CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: the kernel then enforces
    permission bits on root too. `probe` is an unreadable file used to prove that it does.
    Returns (exit code, stderr).
    """
    command = [str(c) for c in command]
    if os.geteuid() != 0:
        if os.access(probe, os.R_OK):
            return None  # the file system ignores permission bits
        result = runner.invoke(app, command)
        return result.exit_code, result.output

    def child(*args):
        return subprocess.run([sys.executable, *args], preexec_fn=_drop_file_capabilities,
                              capture_output=True, text=True, timeout=120)

    try:
        check = child("-c", f"open({str(probe)!r}, 'rb').read()")
    except (OSError, subprocess.SubprocessError):
        return None
    if "PermissionError" not in check.stderr:
        return None  # reads still succeed: no real denial to test
    done = child("-c", "from labelaudit.cli import app; app()", *command)
    return done.returncode, " ".join(done.stderr.replace("│", " ").split())  # unwrap boxes


NO_DENIAL = ("running as root, where chmod 000 does not deny reads, and dropping "
             "CAP_DAC_OVERRIDE in a child process did not make the kernel deny them either")


def test_unreadable_table(tmp_path):
    data = tmp_path / "data.csv"
    table().to_csv(data, index=False)
    data.chmod(0o000)
    before = snapshot(data)
    ran = _without_override(data, "scan", data, "--out", tmp_path / "report", "--quiet")
    if ran is None:
        pytest.skip(NO_DENIAL)
    code, output = ran
    assert code == 2, output
    # click checks the argument first ("path '...' is not readable"); the library says the same
    assert "not readable" in output or "permission denied" in output
    assert "Traceback" not in output
    assert not (tmp_path / "report").exists()
    assert snapshot(data) == before


def test_unreadable_image_inside_the_folder(tmp_path):
    root = image_folder(tmp_path / "imgs")
    (root / "dog" / "002.png").chmod(0o000)
    before = snapshot(root)
    ran = _without_override(root / "dog" / "002.png", "scan", root, "--out", tmp_path / "report",
                            "--quiet")
    if ran is None:
        pytest.skip(NO_DENIAL)
    code, output = ran
    assert code == 2, output
    assert "dog/002.png" in output and "permission denied" in output and "chmod" in output
    assert "Traceback" not in output
    assert not (tmp_path / "report").exists()
    assert snapshot(root) == before


def test_unreadable_class_folder(tmp_path):
    root = image_folder(tmp_path / "imgs", classes=("cat", "dog", "eel"))
    (root / "eel").chmod(0o000)
    probe = tmp_path / "probe"
    probe.write_text("x")
    probe.chmod(0o000)
    try:
        ran = _without_override(probe, "scan", root, "--out", tmp_path / "report", "--quiet")
    finally:
        (root / "eel").chmod(0o755)  # so that pytest can clean up
    if ran is None:
        pytest.skip(NO_DENIAL)
    code, output = ran
    assert code == 2, output
    assert "eel" in output and "permission denied" in output and "Traceback" not in output
    assert not (tmp_path / "report").exists()
