"""The loss-curve plot: deterministic, self-contained SVG; PNG by extension; clear errors."""

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from labelaudit.errors import UsageError
from labelaudit.gap import diagnose
from labelaudit.plot import history_svg, save_history_plot


@pytest.fixture
def history():
    epochs = np.arange(1, 16)
    return pd.concat([
        pd.DataFrame({"fold": fold, "epoch": epochs, "train_loss": 1 / epochs,
                      "val_loss": 1 / epochs + 0.02 * epochs * fold})
        for fold in (1, 2, 3)
    ], ignore_index=True)


def test_svg_is_deterministic_inline_and_offline(history):
    verdict = diagnose(history)
    first = history_svg(history, verdict=verdict)
    assert first == history_svg(history, verdict=verdict)
    assert first.startswith("<svg") and first.rstrip().endswith("</svg>")
    # Only the namespace URIs, which browsers never fetch.
    urls = set(re.findall(r"https?://[^\"'<> )]+", first))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert "<script" not in first


def test_svg_draws_every_fold_and_marks(history):
    svg = history_svg(history, verdict=diagnose(history))
    one = history_svg(history[history["fold"] == 1])
    # Two lines (train, val) per fold, plus the shaded gap: three folds draw more paths than one.
    assert svg.count("<path") > one.count("<path")
    assert svg != one


def test_gap_column_and_missing_fold_are_optional(history):
    frame = history[history["fold"] == 2].drop(columns="fold").assign(gap=lambda f: 0.0)
    assert history_svg(frame).startswith("<svg")


def test_missing_columns_are_a_usage_error():
    with pytest.raises(UsageError, match="lacks column.*val_loss"):
        history_svg(pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5]}))


@pytest.mark.parametrize("name, magic", [("curves.svg", b"<svg"), ("curves.PNG", b"\x89PNG")])
def test_save_by_extension(history, tmp_path, name, magic):
    path = save_history_plot(history, tmp_path / name)
    assert path.read_bytes().startswith(magic)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_save_rejects_other_extensions(history, tmp_path):
    with pytest.raises(UsageError, match=r"use a \.svg or \.png"):
        save_history_plot(history, tmp_path / "curves.pdf")
    assert list(tmp_path.iterdir()) == []


def test_import_does_not_load_matplotlib():
    code = "import labelaudit.plot, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_gap_is_the_main_panel_with_the_threshold_and_partial_folds_named():
    """Top: the gap's median and range with the steep threshold; bottom: the losses; epochs
    that only fold 1 reached are drawn thin and named."""
    from labelaudit.plot import _figure

    rows = [{"fold": fold, "epoch": e, "train_loss": 1 / e, "val_loss": 1 / e + 0.02 * e * fold}
            for fold, last in ((1, 20), (2, 12), (3, 12)) for e in range(1, last + 1)]
    history = pd.DataFrame(rows)
    fig = _figure(history, verdict=diagnose(history[history["fold"] == 1]))
    gap_ax, loss_ax = fig.axes
    assert gap_ax.get_ylabel() == "gap" and loss_ax.get_ylabel() == "loss"
    assert fig.get_size_inches()[0] * fig.dpi == 640
    labels = fig.legends[0].get_texts()
    text = " ".join(t.get_text() for t in labels)
    assert "steep from here" in text and "range over the 3 folds" in text
    assert "best validation epoch, each fold" in text
    assert any("epochs 13-20: fold 1 only" in t.get_text() for t in gap_ax.texts)
    # One best-validation marker per fold.
    markers = [line for line in loss_ax.lines if line.get_marker() == "o"]
    assert len(markers) == 3
