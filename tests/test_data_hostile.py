"""The loaders on hostile input, second round: links that would read a folder twice, link loops,
loose files, honest --strict counts, duplicate or nested columns, absurd numbers and image sizes
that cannot fit in memory."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import labelaudit.images
from labelaudit.cli import app
from labelaudit.data import load_dataset
from labelaudit.errors import UsageError
from labelaudit.features import make_features

from .conftest import DATASETS
from .test_bad_input import png

runner = CliRunner()


def scan(path: Path, out: Path, *extra: str):
    return runner.invoke(app, ["scan", str(path), "--out", str(out), "--audit", "never",
                               "--epochs", "2", "--cv", "2", "-q", *extra])


def classes(root: Path, names=("a", "b", "c"), n: int = 4) -> Path:
    for c, name in enumerate(names):
        for i in range(n):
            png(root / name / f"{i:02d}.png", value=60 * c + i)
    return root


def cut_png(path: Path) -> None:
    """A PNG whose header reads but whose pixel data is cut off: fails only when decoded."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    whole = path.with_suffix(".whole")
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(whole, format="PNG")
    path.write_bytes(whole.read_bytes()[:900])
    whole.unlink()


# -- 1. links to folders that are already being read ---------------------------------------------


@pytest.mark.parametrize("follow", [False, True])
def test_a_link_to_the_root_inside_a_class_is_not_followed(tmp_path, follow):
    root = classes(tmp_path / "imgs", n=40)
    os.symlink(root, root / "a" / "everything")
    ds = load_dataset(root, follow_symlinks=follow)
    assert ds.n_samples == 120 and np.bincount(ds.labels).tolist() == [40, 40, 40]
    reason = dict(ds.skipped)["a/everything"]
    assert "dataset folder" in reason and "not followed" in reason


def test_a_link_to_the_root_above_it_is_not_followed_either(tmp_path):
    root = classes(tmp_path / "data" / "imgs")
    os.symlink(tmp_path / "data", root / "b" / "up")
    ds = load_dataset(root, follow_symlinks=True)
    assert ds.n_samples == 12 and "dataset folder" in dict(ds.skipped)["b/up"]


def test_links_into_another_class_are_not_followed(tmp_path):
    root = classes(tmp_path / "imgs")
    (root / "c" / "deep").mkdir()
    png(root / "c" / "deep" / "x.png", value=200)
    os.symlink(root / "b", root / "a" / "bees")  # a whole class folder
    os.symlink(root / "c" / "deep", root / "a" / "sub")  # a folder inside another class
    os.symlink(root / "a", root / "c" / "ays")  # a class folder read before this one
    ds = load_dataset(root)
    assert ds.n_samples == 13 and np.bincount(ds.labels).tolist() == [4, 4, 5]
    skipped = dict(ds.skipped)
    assert "class 'b'" in skipped["a/bees"] and "class 'c'" in skipped["a/sub"]
    assert "class 'a'" in skipped["c/ays"]
    # a link to a file of another class is an ordinary file: it is read (as before)
    assert all(reason.startswith("symlink to a folder") for reason in skipped.values())


def test_a_class_folder_that_links_to_another_class_is_not_a_second_class(tmp_path):
    root = classes(tmp_path / "imgs", names=("cat", "dog"))
    os.symlink(root / "dog", root / "dogs")
    ds = load_dataset(root)
    assert ds.classes == ("cat", "dog") and ds.n_samples == 8
    assert "class 'dog'" in dict(ds.skipped)["dogs"]


def test_strict_refuses_a_link_to_the_root(tmp_path):
    root = classes(tmp_path / "imgs")
    os.symlink(root, root / "a" / "everything")
    with pytest.raises(UsageError, match=r"a/everything: symlink to a folder.*drop --strict"):
        load_dataset(root, strict=True)


def test_scan_of_a_class_linking_to_the_root_keeps_the_counts(tmp_path):
    root = classes(tmp_path / "imgs", n=6)
    os.symlink(root, root / "a" / "everything")
    result = scan(root, tmp_path / "out")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["dataset"]
    assert summary["n_samples"] == 18
    assert summary["class_counts"] == {"a": 6, "b": 6, "c": 6}
    assert [s["id"] for s in summary["skipped"]] == ["a/everything"]


# -- 2. symlink loops ----------------------------------------------------------------------------


def test_a_file_symlink_loop_is_skipped_not_a_crash(tmp_path):
    root = classes(tmp_path / "imgs", names=("a", "b"))
    os.symlink(root / "a" / "y.png", root / "a" / "x.png")
    os.symlink(root / "a" / "x.png", root / "a" / "y.png")
    os.symlink(root / "b" / "self", root / "b" / "self")
    for follow in (False, True):
        ds = load_dataset(root, follow_symlinks=follow)
        assert ds.n_samples == 8
        assert dict(ds.skipped) == {"a/x.png": "symlink loop", "a/y.png": "symlink loop",
                                    "b/self": "symlink loop"}
    with pytest.raises(UsageError, match=r"3 file\(s\) cannot be used, first a/x.png: symlink "
                                         "loop"):
        load_dataset(root, strict=True)


def test_a_class_folder_that_is_a_link_loop_is_skipped(tmp_path):
    root = classes(tmp_path / "imgs", names=("a", "b"))
    os.symlink(root / "zz", root / "zz")
    ds = load_dataset(root)
    assert dict(ds.skipped) == {"zz": "symlink loop"} and ds.classes == ("a", "b")


def test_a_link_loop_through_the_cli(tmp_path):
    root = classes(tmp_path / "imgs", names=("a", "b"), n=6)
    os.symlink(root / "a" / "y.png", root / "a" / "x.png")
    os.symlink(root / "a" / "x.png", root / "a" / "y.png")
    result = scan(root, tmp_path / "out")
    assert result.exit_code == 0, result.output
    strict = scan(root, tmp_path / "strict", "--strict")
    assert strict.exit_code == 2, strict.output
    assert "symlink loop" in strict.output and "Traceback" not in strict.output


# -- 3. loose files next to the class folders ----------------------------------------------------


def test_loose_files_at_the_top_are_named_in_a_warning(tmp_path):
    root = classes(tmp_path / "imgs", names=("a", "b"))
    png(root / "stray.png")
    (root / "README.txt").write_text("about this data")
    (root / ".hidden").write_text("ignored without a word")
    ds = load_dataset(root)
    assert ds.n_samples == 8
    loose = [w for w in ds.warnings if "not in a class folder" in w]
    assert len(loose) == 1
    assert loose[0].startswith(f"2 file(s) at the top of {root} are not in a class folder and "
                               "were ignored")
    assert "'README.txt'" in loose[0] and "'stray.png'" in loose[0] and ".hidden" not in loose[0]


def test_a_folder_without_loose_files_has_no_such_warning(tmp_path):
    ds = load_dataset(classes(tmp_path / "imgs"))
    assert not ds.warnings


# -- 4. --strict counts every unusable file ------------------------------------------------------


def test_strict_counts_every_file_that_fails_when_decoded(tmp_path):
    root = classes(tmp_path / "imgs", names=("a", "b"))
    cut_png(root / "a" / "cut1.png")
    cut_png(root / "b" / "cut2.png")
    assert len(load_dataset(root).skipped) == 2
    with pytest.raises(UsageError, match=r": 2 file\(s\) cannot be used, first a/cut1.png: "
                                         r"unreadable image.*drop --strict"):
        load_dataset(root, strict=True)


def test_strict_does_not_claim_an_exact_count_before_decoding(tmp_path):
    root = classes(tmp_path / "imgs", names=("a", "b"))
    (root / "a" / "notes.txt").write_text("not a picture")
    (root / "b" / "empty.png").write_bytes(b"")
    cut_png(root / "b" / "cut.png")  # only found when decoded
    assert len(load_dataset(root).skipped) == 3
    with pytest.raises(UsageError) as refused:
        load_dataset(root, strict=True)
    message = str(refused.value)
    assert "at least 2 file(s) cannot be used" in message and "decoded" in message


def test_strict_through_the_cli_gives_the_count(tmp_path):
    root = classes(tmp_path / "imgs", names=("a", "b"), n=6)
    cut_png(root / "a" / "cut1.png")
    cut_png(root / "a" / "cut2.png")
    cut_png(root / "b" / "cut3.png")
    result = scan(root, tmp_path / "out", "--strict")
    assert result.exit_code == 2
    assert "3 file(s) cannot be used" in result.output
    assert not (tmp_path / "out").exists()


# -- 5. duplicate column names -------------------------------------------------------------------


def test_duplicate_csv_columns_are_refused(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("label,x,label,y,y\n" + "a,1,b,2,3\nb,2,a,3,4\n" * 4)
    with pytest.raises(UsageError, match=r"duplicate column names: 'label' \(2 times\), 'y' "
                                         r"\(2 times\).*rename"):
        load_dataset(data)


def test_duplicate_tsv_columns_are_refused_through_the_cli(tmp_path):
    data = tmp_path / "data.tsv"
    data.write_text("x\tlabel\tlabel\n" + "1\ta\tb\n2\tb\ta\n" * 4)
    result = scan(data, tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "duplicate column names: 'label'" in result.output
    assert "Traceback" not in result.output


def test_a_column_named_like_a_renamed_duplicate_is_fine(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("label,label.1,x\n" + "a,1,2\nb,2,3\n" * 4)
    ds = load_dataset(data)
    assert ds.label_column == "label" and list(ds.inputs.columns) == ["label.1", "x"]


def test_a_quoted_header_with_a_bom_is_read_like_pandas_reads_it(tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes('\ufeff"label","x, y"\na,1\nb,2\na,3\nb,4\n'.encode())
    assert list(load_dataset(data).inputs.columns) == ["x, y"]


def test_duplicate_parquet_columns_are_refused(tmp_path):
    data = tmp_path / "data.parquet"
    pq.write_table(pa.table([pa.array(["a", "b"] * 3), pa.array([1.0] * 6),
                             pa.array(["b", "a"] * 3)], names=["label", "x", "label"]), data)
    with pytest.raises(UsageError, match=r"duplicate column names: 'label' \(2 times\)"):
        load_dataset(data)


def test_duplicate_jsonl_keys_are_refused(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"label": "a", "x": 1}\n{"label": "b", "x": 2, "label": "a"}\n')
    with pytest.raises(UsageError, match=r"line 2 has the key 'label' twice"):
        load_dataset(data)


# -- 6. columns that are not scalars -------------------------------------------------------------


def test_a_parquet_list_column_is_refused_by_name(tmp_path):
    data = tmp_path / "data.parquet"
    pq.write_table(pa.table({"x": [1.0, 2, 3, 4], "tags": [[1, 2], [3], [], [4]],
                             "label": ["a", "b"] * 2}), data)
    with pytest.raises(UsageError, match=r"column 'tags' holds lists .*scalar"):
        load_dataset(data)
    result = scan(data, tmp_path / "out")
    assert result.exit_code == 2 and "column 'tags'" in result.output


def test_a_parquet_struct_column_is_refused_by_name(tmp_path):
    data = tmp_path / "data.parquet"
    pq.write_table(pa.table({"x": [1.0, 2, 3, 4], "point": [{"u": i} for i in range(4)],
                             "label": ["a", "b"] * 2}), data)
    with pytest.raises(UsageError, match=r"column 'point' holds structs .*scalar"):
        load_dataset(data)


def invalid_utf8(values: list[bytes]) -> pa.Array:
    """A parquet string column holding bytes that are not UTF-8, as a careless writer makes."""
    offsets = np.cumsum([0] + [len(v) for v in values]).astype(np.int32)
    return pa.Array.from_buffers(pa.string(), len(values),
                                 [None, pa.py_buffer(offsets.tobytes()),
                                  pa.py_buffer(b"".join(values))])


def test_a_parquet_string_column_that_is_not_utf8_is_refused(tmp_path):
    data = tmp_path / "data.parquet"
    pq.write_table(pa.table({"x": np.arange(8.0), "s": invalid_utf8([b"ok", b"\xff\xfe"] * 4),
                             "label": ["a", "b"] * 4}), data)
    with pytest.raises(UsageError, match=r"column 's' holds bytes that are not UTF-8 text "
                                         r"\(first in row 1\)"):
        load_dataset(data)
    result = scan(data, tmp_path / "out")
    assert result.exit_code == 2 and "column 's'" in result.output, result.output


def test_a_parquet_binary_column(tmp_path):
    data = tmp_path / "data.parquet"
    text = pa.array([b"red", b"blue"] * 4, pa.binary())
    pq.write_table(pa.table({"x": np.arange(8.0), "colour": text, "label": ["a", "b"] * 4}), data)
    assert set(load_dataset(data).inputs["colour"]) == {"red", "blue"}  # UTF-8 bytes are text
    raw = pa.array([b"\x00\xff", b"\x80"] * 4, pa.binary())
    pq.write_table(pa.table({"x": np.arange(8.0), "blob": raw, "label": ["a", "b"] * 4}), data)
    with pytest.raises(UsageError, match=r"column 'blob' holds bytes that are not UTF-8 text "
                                         r"\(first in row 0\)"):
        load_dataset(data)


@pytest.mark.parametrize("value", [[1, 2], {"k": 1}])
def test_jsonl_lists_and_objects_are_refused_by_name(tmp_path, value):
    data = tmp_path / "data.jsonl"
    rows = [{"x": i, "extra": value if i == 3 else None, "label": "ab"[i % 2]} for i in range(6)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kind = "lists" if isinstance(value, list) else "objects"
    with pytest.raises(UsageError, match=rf"column 'extra' holds {kind} \(first in row 3\).*"
                                         "scalar"):
        load_dataset(data)


def test_a_jsonl_label_that_is_a_list_is_refused(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"x": i, "label": ["ab"[i % 2]]}) + "\n"
                            for i in range(6)))
    result = scan(data, tmp_path / "out")
    assert result.exit_code == 2 and "column 'label' holds lists" in result.output


# -- 7. absurd numbers ---------------------------------------------------------------------------


def wine_with(value: float, tmp_path: Path, column: str = "alcohol") -> Path:
    frame = pd.read_csv(DATASETS / "wine-noisy.csv")
    frame[column] = frame[column].astype(np.float64)
    frame.loc[5, column] = value
    path = tmp_path / "wine.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("value", [1e308, -1e308, 1e30])
def test_an_absurd_value_becomes_missing_with_a_warning(tmp_path, value):
    path = wine_with(value, tmp_path)
    ds = load_dataset(path, id_column="sample_id")
    assert np.isnan(ds.inputs["alcohol"].iloc[5]) and ds.inputs["alcohol"].notna().sum() == 177
    assert any(w.startswith("column 'alcohol': 1 value(s) are absurdly far from the others")
               for w in ds.warnings), ds.warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way
        X = make_features(ds)
    # the column still carries its information (before, it was all zeros)
    clean = make_features(load_dataset(wine_with(np.nan, tmp_path), id_column="sample_id"))
    np.testing.assert_array_equal(X, clean)


def test_an_absurd_integer_becomes_missing(tmp_path):
    data = tmp_path / "data.csv"
    pd.DataFrame({"n": [3, 5, 4, 6, 5, 2**62, 4, 3], "label": ["a", "b"] * 4}).to_csv(
        data, index=False)
    ds = load_dataset(data)
    assert ds.inputs["n"].isna().tolist() == [False] * 5 + [True] + [False] * 2
    assert any("column 'n': 1 value(s) are absurdly far" in w for w in ds.warnings)


def test_ordinary_values_are_read_exactly(tmp_path):
    """Demo data, heavy tails and rare spikes are left as they are."""
    ds = load_dataset(DATASETS / "wine-noisy.csv", id_column="sample_id")
    raw = pd.read_csv(DATASETS / "wine-noisy.csv").drop(columns=["sample_id", "label"])
    pd.testing.assert_frame_equal(ds.inputs, raw)
    assert not ds.warnings
    data = tmp_path / "data.csv"
    rng = np.random.default_rng(0)
    spikes = np.zeros(200)
    spikes[[3, 50]] = [7.0, 1e5]
    pd.DataFrame({"lognormal": rng.lognormal(0, 3, 200), "spikes": spikes,
                  "constant": 1.0, "label": ["a", "b"] * 100}).to_csv(data, index=False)
    assert not load_dataset(data).warnings


def test_features_of_a_column_with_huge_magnitudes_do_not_overflow():
    from labelaudit.features import tabular_features

    base = np.random.default_rng(0).normal(size=50)
    frame = pd.DataFrame({"big": base * 1e300, "small": base})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X = tabular_features(frame)
    np.testing.assert_allclose(X[:, 0], X[:, 1], rtol=1e-6)
    assert np.abs(X).max() < 10


def test_ordinary_features_are_unchanged_by_the_overflow_guard():
    from sklearn.preprocessing import StandardScaler

    from labelaudit.features import tabular_features

    frame = pd.read_csv(DATASETS / "wine-noisy.csv").drop(columns=["sample_id", "label"])
    expected = np.asarray(StandardScaler().fit_transform(frame), dtype=np.float32)
    np.testing.assert_array_equal(tabular_features(frame), expected)


# -- 8. image sizes that cannot fit --------------------------------------------------------------


@pytest.mark.parametrize("size", [0, -3])
def test_an_image_size_below_one_is_refused(tmp_path, size):
    root = classes(tmp_path / "imgs", names=("a", "b"))
    with pytest.raises(UsageError, match=rf"image_size must be at least 1 pixel \(got {size}\)"):
        load_dataset(root, image_size=size)


def test_an_image_size_too_big_for_memory_is_refused_before_allocating(tmp_path):
    root = classes(tmp_path / "imgs", names=("a", "b"))
    with pytest.raises(UsageError, match=r"--image-size 10000000 needs .*memory.*pass "
                                         r"--image-size \d+ or less"):
        load_dataset(root, image_size=10_000_000)


def test_the_size_that_fits_is_what_the_message_says(tmp_path, monkeypatch):
    root = classes(tmp_path / "imgs", names=("a", "b"))  # 8 grayscale images
    monkeypatch.setattr(labelaudit.images, "_memory_bytes", lambda: 8 * 1024**2)
    with pytest.raises(UsageError, match=r"pass --image-size (\d+) or less") as refused:
        load_dataset(root, image_size=1000)
    fits = int(re.search(r"pass --image-size (\d+) or less", str(refused.value)).group(1))
    assert load_dataset(root, image_size=fits).inputs.shape == (8, 1, fits, fits)
    with pytest.raises(UsageError):
        load_dataset(root, image_size=fits + 1)


def test_an_image_size_too_big_through_the_cli(tmp_path):
    root = classes(tmp_path / "imgs", names=("a", "b"))
    result = scan(root, tmp_path / "out", "--image-size", "100000000")
    assert result.exit_code == 2, result.output
    assert "--image-size 100000000 needs" in result.output
    assert not (tmp_path / "out").exists()
