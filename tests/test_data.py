"""The loaders on messy and hostile data: what is skipped, refused, repaired, and kept as given."""

from __future__ import annotations

import csv
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from labelaudit.cli import app
from labelaudit.data import MAX_IMAGE_PIXELS, load_dataset
from labelaudit.errors import UsageError

from .test_bad_input import png, snapshot

runner = CliRunner()


def noisy_png(path: Path, side: int = 64, seed: int = 0) -> None:
    """A PNG big enough that cutting it keeps the header but loses pixel data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(path)


def png_header_only(path: Path, width: int, height: int) -> None:
    """A tiny PNG file that claims huge dimensions: a decompression bomb's calling card."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def messy_folder(root: Path, outside: Path) -> dict:
    """Good images in two classes plus one of every kind of unusable file; returns the reasons."""
    for c, name in enumerate(("cat", "dog")):
        for i in range(8):
            png(root / name / f"{i:02d}.png", value=30 + 150 * c + i)
    (root / "cat" / "corrupt.png").write_bytes(os.urandom(300))
    noisy_png(root / "cat" / "whole.png")
    (root / "cat" / "truncated.png").write_bytes((root / "cat" / "whole.png").read_bytes()[:900])
    (root / "cat" / "whole.png").unlink()
    (root / "dog" / "empty.jpg").write_bytes(b"")
    (root / "dog" / "notes.txt").write_text("not a picture")
    (root / "dog" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: ignored, not listed
    png_header_only(root / "dog" / "bomb.png", 100_000, 100_000)
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 100
    png_header_only(root / "dog" / "huge.png", side, side)
    png(outside / "elsewhere.png")
    (outside / "more").mkdir()
    png(outside / "more" / "x.png")
    os.symlink(outside / "elsewhere.png", root / "cat" / "link.png")
    os.symlink(outside / "more", root / "dog" / "linked-folder")
    os.symlink(outside, root / "eel")  # a whole class folder elsewhere
    return {
        "cat/corrupt.png": "unreadable image",
        "cat/truncated.png": "unreadable image",
        "dog/empty.jpg": "zero-byte file",
        "dog/notes.txt": "not an image file",
        "dog/bomb.png": "decompression bomb",
        "dog/huge.png": "decompression bomb",
        "cat/link.png": "symlink leading outside the dataset",
        "dog/linked-folder": "symlink leading outside the dataset",
        "eel": "symlink leading outside the dataset",
    }


# -- image folders -------------------------------------------------------------------------------


def test_unusable_files_are_skipped_and_listed(tmp_path):
    (tmp_path / "outside").mkdir()
    reasons = messy_folder(tmp_path / "imgs", tmp_path / "outside")
    ds = load_dataset(tmp_path / "imgs")
    assert ds.classes == ("cat", "dog")
    assert ds.n_samples == 16 and ds.inputs.shape == (16, 1, 8, 8)
    skipped = dict(ds.skipped)
    assert set(skipped) == set(reasons)
    for rel, words in reasons.items():
        assert words in skipped[rel], (rel, skipped[rel])
    assert any("skipped 9 file(s)" in w and "--strict" in w for w in ds.warnings)
    described = ds.describe()
    assert described["n_skipped"] == 9 and {s["id"] for s in described["skipped"]} == set(reasons)
    assert str(tmp_path / "imgs") not in json.dumps(described["skipped"])  # ids, not paths


def test_strict_refuses_what_would_be_skipped(tmp_path):
    (tmp_path / "outside").mkdir()
    messy_folder(tmp_path / "imgs", tmp_path / "outside")
    # refused at the header pass, before decoding: the truncated file is not counted yet
    with pytest.raises(UsageError, match=r"8 file\(s\) cannot be used, first eel: symlink.*"
                                         "drop --strict"):
        load_dataset(tmp_path / "imgs", strict=True)


def test_strict_refuses_a_file_that_only_fails_when_decoded(tmp_path):
    for c in ("a", "b"):
        for i in range(3):
            png(tmp_path / "imgs" / c / f"{i}.png", value=100 * (c == "b"))
    noisy_png(tmp_path / "whole.png")
    (tmp_path / "imgs" / "a" / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:900])
    assert "a/cut.png" in dict(load_dataset(tmp_path / "imgs").skipped)
    with pytest.raises(UsageError, match=r"a/cut.png.*unreadable image.*drop --strict"):
        load_dataset(tmp_path / "imgs", strict=True)


def test_symlinks_outside_are_followed_only_when_asked(tmp_path):
    (tmp_path / "outside").mkdir()
    messy_folder(tmp_path / "imgs", tmp_path / "outside")
    ds = load_dataset(tmp_path / "imgs", follow_symlinks=True)
    assert ds.classes == ("cat", "dog", "eel")
    ids = set(ds.ids)
    assert {"cat/link.png", "dog/linked-folder/x.png", "eel/elsewhere.png", "eel/more/x.png"} <= ids
    assert not any("symlink" in reason for _, reason in ds.skipped)


def test_symlinks_inside_the_dataset_are_followed_and_loops_end(tmp_path):
    root = tmp_path / "imgs"
    for c in ("a", "b"):
        for i in range(3):
            png(root / c / f"{i}.png", value=100 * (c == "b") + i)
    os.symlink(root / "a" / "0.png", root / "b" / "alias.png")
    os.symlink(root / "b", root / "b" / "loop")  # would recurse forever if followed blindly
    for follow in (False, True):
        ds = load_dataset(root, follow_symlinks=follow)
        assert "b/alias.png" in set(ds.ids) and ds.n_samples == 7
        assert not ds.skipped


def test_mixed_sizes_and_modes_are_converted(tmp_path):
    root = tmp_path / "imgs"
    png(root / "a" / "gray.png", value=10)
    Image.new("RGB", (12, 6), (255, 0, 0)).save(root / "a" / "rgb.png")
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(root / "a" / "transparent.png")
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(
        root / "a" / "sixteen.png")
    (root / "b").mkdir()
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(root / "b" / "cmyk.jpg")
    Image.new("P", (5, 9), 3).save(root / "b" / "palette.gif")
    Image.new("1", (8, 8), 1).save(root / "b" / "bilevel.bmp")
    Image.new("LA", (8, 8), (200, 255)).save(root / "b" / "gray-alpha.png")
    assert Image.open(root / "a" / "sixteen.png").mode == "I;16"
    ds = load_dataset(root, image_size=8)
    assert not ds.skipped and ds.n_samples == 8
    assert ds.inputs.shape == (8, 3, 8, 8) and ds.inputs.dtype == np.uint8
    pixels = dict(zip(ds.ids, ds.inputs, strict=True))
    assert (pixels["a/transparent.png"] == 255).all()  # composited on white, not black
    sixteen = pixels["a/sixteen.png"][0]
    assert sixteen.min() == 0 and sixteen.max() == 255  # 16 bits scaled into 8, not clipped
    assert pixels["b/cmyk.jpg"][0].mean() > 200 and pixels["b/cmyk.jpg"][1].mean() < 60  # red
    assert any("mixed modes" in w and "RGB" in w for w in ds.warnings)
    assert any("mixed sizes" in w for w in ds.warnings)


def test_grayscale_folders_stay_one_channel(tmp_path):
    root = tmp_path / "imgs"
    png(root / "a" / "0.png")
    Image.fromarray(np.zeros((8, 8), dtype=np.uint16)).save(root / "a" / "1.png")
    png(root / "b" / "0.png", value=255)
    Image.new("1", (8, 8)).save(root / "b" / "1.png")
    assert load_dataset(root).inputs.shape == (4, 1, 8, 8)


def test_empty_class_folders_are_left_out_with_a_warning(tmp_path):
    root = tmp_path / "imgs"
    for c in ("a", "c"):
        for i in range(3):
            png(root / c / f"{i}.png", value=100 * (c == "c"))
    (root / "b").mkdir()
    (root / "b" / "broken.png").write_bytes(b"")
    ds = load_dataset(root)
    assert ds.classes == ("a", "c") and sorted(set(ds.labels)) == [0, 1]
    assert any("left out 1 class(es)" in w and "'b'" in w for w in ds.warnings)


def test_loading_leaves_the_folder_untouched(tmp_path):
    (tmp_path / "outside").mkdir()
    messy_folder(tmp_path / "imgs", tmp_path / "outside")
    before = snapshot(tmp_path)
    load_dataset(tmp_path / "imgs")
    load_dataset(tmp_path / "imgs", follow_symlinks=True)
    assert snapshot(tmp_path) == before


# -- tables --------------------------------------------------------------------------------------


def test_rows_without_a_label_are_dropped_and_listed(tmp_path):
    data = tmp_path / "data.csv"
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(12)], "x": np.arange(12.0),
                          "label": ["a", "b", None, "a", "b", "", "a", "b", "a", "b", "a", None]})
    frame.to_csv(data, index=False)
    ds = load_dataset(data, id_column="id")
    assert ds.n_samples == 9 and "r2" not in set(ds.ids)
    assert dict(ds.skipped) == {"r2": "no label in 'label'", "r5": "no label in 'label'",
                                "r11": "no label in 'label'"}
    assert any("dropped 3 row(s)" in w for w in ds.warnings)
    assert ds.describe()["n_skipped"] == 3


def test_ids_and_classes_are_kept_as_written(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("key,x,label\n007,1,NA\n7,2,None\n0x1,3,NA\n1e3,4,None\n-0,5,null\n"
                    "+0,6,null\n")
    ds = load_dataset(data, id_column="key")
    assert list(ds.ids) == ["007", "7", "0x1", "1e3", "-0", "+0"]
    assert ds.classes == ("NA", "None", "null")
    assert [ds.classes[i] for i in ds.labels] == ["NA", "None", "NA", "None", "null", "null"]


def test_numeric_classes_sort_by_value(tmp_path):
    data = tmp_path / "data.csv"
    pd.DataFrame({"x": range(6), "label": [10, 2, 1, 10, 2, 1]}).to_csv(data, index=False)
    assert load_dataset(data).classes == ("1", "2", "10")


def test_labels_that_collide_as_text_are_refused(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"x": 1, "label": 1}\n{"x": 2, "label": "1"}\n{"x": 3, "label": 2}\n')
    with pytest.raises(UsageError, match="collide when written as text"):
        load_dataset(data)


def test_mostly_numeric_columns_are_repaired(tmp_path):
    data = tmp_path / "data.csv"
    values = [str(v) for v in np.arange(30) / 2]
    values[3], values[17] = "?", "unknown"
    pd.DataFrame({"x": values, "colour": ["red", "blue", "green"] * 10,
                  "label": ["a", "b"] * 15}).to_csv(data, index=False)
    ds = load_dataset(data)
    assert ds.kind == "tabular"
    x = ds.inputs["x"]
    assert pd.api.types.is_float_dtype(x) and x.isna().sum() == 2 and x.iloc[4] == 2.0
    assert any("column 'x': 2 value(s) are not numbers ('?', 'unknown')" in w for w in ds.warnings)
    assert not pd.api.types.is_numeric_dtype(ds.inputs["colour"])  # a real category stays one


def test_mixed_type_json_columns_become_categories(tmp_path):
    data = tmp_path / "data.jsonl"
    rows = [{"x": v, "n": i, "label": "ab"[i % 2]}
            for i, v in enumerate([1, "one", 2.5, True, None, "two"] * 3)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = load_dataset(data)
    assert any("column 'x' mixes types" in w for w in ds.warnings)
    assert set(ds.inputs["x"].dropna()) == {"1", "one", "2.5", "True", "two"}


def test_infinite_values_become_missing(tmp_path):
    data = tmp_path / "data.csv"
    pd.DataFrame({"x": [1.0, np.inf, -np.inf, 4.0] * 3, "label": ["a", "b"] * 6}).to_csv(
        data, index=False)
    ds = load_dataset(data)
    assert ds.inputs["x"].isna().sum() == 6 and np.isfinite(ds.inputs["x"].dropna()).all()
    assert any("6 infinite value(s)" in w for w in ds.warnings)


def test_parquet_with_missing_labels_and_integer_classes(tmp_path):
    data = tmp_path / "data.parquet"
    pd.DataFrame({"x": np.arange(8.0), "label": [1, 2, None, 1, 2, 1, 2, 1]}).to_parquet(data)
    ds = load_dataset(data)
    assert ds.classes == ("1", "2") and ds.n_samples == 7 and dict(ds.skipped) == {
        "2": "no label in 'label'"}


# -- the warnings reach the terminal and summary.json ---------------------------------------------


@pytest.mark.slow
def test_scan_of_a_messy_folder_reports_what_it_skipped(tmp_path):
    (tmp_path / "outside").mkdir()
    reasons = messy_folder(tmp_path / "imgs", tmp_path / "outside")
    before = snapshot(tmp_path / "imgs")
    out = tmp_path / "report"
    result = runner.invoke(app, ["scan", str(tmp_path / "imgs"), "--out", str(out), "--epochs",
                                 "2", "--cv", "2", "--audit", "always"])
    assert result.exit_code == 0, result.output
    assert "warning: skipped 9 file(s)" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"]["n_skipped"] == 9
    assert {s["id"] for s in summary["dataset"]["skipped"]} == set(reasons)
    assert any("skipped 9 file(s)" in w for w in summary["dataset"]["warnings"])
    issues = pd.read_csv(out / "issues.csv", dtype={"id": str})
    assert len(issues) == 16 and not set(issues["id"]) & set(reasons)
    assert snapshot(tmp_path / "imgs") == before

    strict = runner.invoke(app, ["scan", str(tmp_path / "imgs"), "--out",
                                 str(tmp_path / "strict"), "--strict", "--quiet"])
    assert strict.exit_code == 2 and "drop --strict" in strict.output
    assert not (tmp_path / "strict").exists()


@pytest.mark.slow
def test_scan_of_a_messy_table_scores_every_kept_row(tmp_path):
    """Missing labels, a mixed column and a class smaller than --cv: warned, counted, scored."""
    rng = np.random.default_rng(0)
    n = 40
    labels = np.array(["big"] * 20 + ["mid"] * 18 + ["tiny"] * 2, dtype=object)
    x = rng.normal(size=n) + (labels == "big") * 3
    mixed = [f"{v:.3f}" for v in rng.normal(size=n)]
    mixed[5] = "n.a."
    frame = pd.DataFrame({"id": [f"row-{i}" for i in range(n)], "x": x, "mixed": mixed,
                          "label": labels})
    frame.loc[[3, 30], "label"] = None
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "report"
    result = runner.invoke(app, ["scan", str(data), "--out", str(out), "--id-column", "id",
                                 "--epochs", "2", "--cv", "3", "--audit", "always"])
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())
    assert "dropped 2 row(s) with no label" in words
    assert "fewer samples than --cv 3 (tiny)" in words and "smaller --cv" in words
    summary = json.loads((out / "summary.json").read_text())
    warnings = " ".join(summary["dataset"]["warnings"])
    assert "dropped 2 row(s)" in warnings and "column 'mixed': 1 value(s) are not numbers" in \
        warnings and "fewer samples than --cv 3" in warnings
    assert summary["dataset"]["n_skipped"] == 2 and summary["dataset"]["n_samples"] == 38
    issues = pd.read_csv(out / "issues.csv", dtype={"id": str}, keep_default_na=False)
    assert sorted(issues["id"]) == sorted(f"row-{i}" for i in range(n) if i not in (3, 30))
    tiny = issues[issues["given_label"] == "tiny"]
    assert len(tiny) == 2 and tiny["label_quality"].between(0, 1).all()


# -- hostile names and texts (hypothesis) ---------------------------------------------------------

HOSTILE = st.sampled_from([
    "<script>alert(1)</script>", "</script>", "<img src=x onerror=alert(1)>", "\"quoted\"",
    "'single'", "a,b;c\td", "&amp;", "{{ 7*7 }}", "${HOME}", "line\nbreak", "\r\n", "\x1b[31m",
    "\x07\x08", "zero\u200bwidth", "right\u202eleft", "ünïcødé", "日本語", "🙂", "  spaced  ",
    "-", "NA", "None", "null", "nan", "007", "1e3", "x" * 200,
])
# Each example writes files; shrinking a failure took minutes, and the failing example is shown.
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]
NAME_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0")
TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")


def hostile_text(chars=TEXT_CHARS, max_size: int = 40):
    return st.one_of(HOSTILE, st.text(chars, min_size=1, max_size=max_size),
                     st.tuples(HOSTILE, st.text(chars, max_size=10)).map("".join))


def file_name_part():
    """A name that is legal as one path component (and not hidden, not . or ..)."""
    return hostile_text(NAME_CHARS, max_size=30).map(lambda s: s.replace("/", "_")).filter(
        lambda s: not s.startswith(".") and len(s.encode()) <= 200)


@settings(max_examples=25, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(classes=st.lists(file_name_part(), min_size=2, max_size=4, unique=True),
       stems=st.lists(file_name_part(), min_size=1, max_size=3, unique=True))
def test_hostile_file_and_class_names_load_as_given(tmp_path_factory, classes, stems):
    root = tmp_path_factory.mktemp("hostile") / "data"
    expected = {}
    for c, name in enumerate(classes):
        for stem in stems:
            file = f"{stem}.png"
            png(root / name / file, value=c)
            expected[f"{name}/{file}"] = name
    ds = load_dataset(root)
    assert ds.classes == tuple(sorted(classes))
    got = {i: ds.classes[label] for i, label in zip(ds.ids, ds.labels, strict=True)}
    assert got == expected and not ds.skipped


@settings(max_examples=30, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(hostile_text(), hostile_text(), hostile_text(max_size=300)),
                     min_size=4, max_size=12, unique_by=lambda r: r[0]),
       columns=st.lists(hostile_text(), min_size=3, max_size=3, unique=True),
       suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".parquet"]))
def test_hostile_ids_classes_columns_and_texts_load_as_given(tmp_path_factory, rows, columns,
                                                             suffix):
    ids = [r[0] for r in rows]
    labels = [r[1] for r in rows[:2]] * (len(rows) // 2) + [rows[0][1]] * (len(rows) % 2)
    texts = [r[2] for r in rows]
    if len(set(labels)) == len(labels):
        labels[-1] = labels[0]  # an all-unique label column is refused (looks like an id)
    id_col, label_col, text_col = columns
    frame = pd.DataFrame({id_col: ids, label_col: labels, text_col: texts})
    data = tmp_path_factory.mktemp("hostile") / f"data{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(data)
    elif suffix == ".jsonl":
        frame.to_json(data, orient="records", lines=True, force_ascii=False)
    else:  # quoted: a bare carriage return inside an unquoted field is not valid CSV
        frame.to_csv(data, index=False, sep="\t" if suffix == ".tsv" else ",",
                     quoting=csv.QUOTE_ALL)
    if len(set(labels)) < 2:
        with pytest.raises(UsageError, match="only one class"):
            load_dataset(data, label_column=label_col, id_column=id_col, text_column=text_col)
        return
    ds = load_dataset(data, label_column=label_col, id_column=id_col, text_column=text_col)
    assert ds.kind == "text" and ds.label_column == label_col and ds.text_column == text_col
    assert list(ds.ids) == ids
    assert set(ds.classes) == set(labels)
    assert [ds.classes[i] for i in ds.labels] == labels
    assert list(ds.inputs) == texts


def test_table_numbers_are_read_exactly_as_written(tmp_path):
    # Decimals that pandas before 3.1 parsed one bit off by default (found with pandas 3.0.6);
    # a table saved again from what was read must hold the same numbers.
    written = ["0.21128828392603236", "0.03200428083121553", "2.3535616268252237",
               "-1.8745399857084932", "-3.5625272952484197", "1e-310"]
    path = tmp_path / "numbers.csv"
    path.write_text("x,label\n" + "".join(f"{v},{'ab'[i % 2]}\n" for i, v in enumerate(written)))
    ds = load_dataset(path)
    assert ds.inputs["x"].tolist() == [float(v) for v in written]


def test_a_column_that_looks_like_an_id_is_named_in_a_warning(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    frame = pd.DataFrame({
        "sample_id": [f"s{i:03d}" for i in range(n)],  # distinct short strings
        "Unnamed: 0": np.arange(n),  # pandas' saved index
        "count": rng.permutation(n),  # distinct whole numbers, but a measurement's name
        "x": rng.normal(size=n),  # distinct floats: an ordinary feature
        "colour": ["red", "blue"] * (n // 2),
        "label": ["a", "b"] * (n // 2),
    })
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    row_numbers = load_dataset(path, id_column="")
    named = [w.split("'")[1] for w in row_numbers.warnings if "like an id" in w]
    assert named == ["sample_id", "Unnamed: 0"]
    assert "pass --id-column sample_id" in " ".join(row_numbers.warnings)
    chosen = load_dataset(path)  # an exact id name wins over pandas' saved index
    assert chosen.id_column == "sample_id"
    assert [w.split("'")[1] for w in chosen.warnings if "like an id" in w] == ["Unnamed: 0"]


def test_text_tables_do_not_warn_about_id_like_columns(text_csv):
    frame = pd.read_csv(text_csv)
    frame.insert(0, "post", [f"p{i}" for i in range(len(frame))])
    frame.to_csv(text_csv, index=False)
    ds = load_dataset(text_csv, label_column="topic")
    assert ds.kind == "text" and not [w for w in ds.warnings if "like an id" in w]
