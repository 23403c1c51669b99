"""Plot loss histories: the gap over the folds on top, each fold's train and validation loss below.

matplotlib (Agg backend) is imported inside the functions so that `import labelaudit` stays fast.
The SVG output is deterministic (fixed hash salt, no date) and self-contained (no external URLs),
so it can be inlined in report.html and compared byte for byte. Only the SVG namespaces' URIs
remain, which a browser never fetches.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from .errors import UsageError

PLOT_FORMATS = ("svg", "png")
_TRAIN_COLOR = "#1f77b4"
_VAL_COLOR = "#d62728"
_GAP_COLOR = "#d62728"
_VERDICT_COLOR = "#6a3d9a"


def _figure(history, *, verdict=None, verdict_fold=None):
    """The gap on top (median over the folds still training, their range shaded, the steep
    threshold and the verdict's trend for reference), each fold's train and validation loss
    beneath it with its own best validation epoch marked. With `verdict_fold`, the fold whose
    curves alone gave the verdict, that fold's gap is drawn apart and the references sit on it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .gap import history_frame

    frame = history_frame(history)
    # A diverged run can log losses near float's maximum, where matplotlib cannot scale an axis
    # (it fails with a singular matrix); they are left out like inf, as a break in the curve.
    losses = frame[["train_loss", "val_loss"]].astype(float)
    frame[["train_loss", "val_loss"]] = losses.where(losses.abs() < 1e300)
    frame["gap"] = frame["val_loss"] - frame["train_loss"]

    # A bare Figure on the Agg canvas: no pyplot state, so no global backend switch and no
    # figures left open when called from a long-running process. 6.4 in at 100 dpi: 640 px.
    fig = Figure(figsize=(6.4, 5.6), dpi=100)
    FigureCanvasAgg(fig)
    gap_ax, loss_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    _draw_gap(gap_ax, frame, verdict, verdict_fold)
    _draw_losses(loss_ax, frame)
    climb = getattr(verdict, "climb_start_epoch", None)
    if climb is not None:
        for ax in (gap_ax, loss_ax):
            ax.axvline(climb, color=_GAP_COLOR, linestyle=":", linewidth=1.2,
                       label=f"gap turns upward ({_fmt_epoch(climb)})" if ax is gap_ax else None)
    folds = frame["fold"].nunique()
    title = "Generalization gap (validation - training loss)"
    if verdict is not None:
        title += f": {verdict.regime}"
        if verdict.growth is not None:
            title += f", growth {verdict.growth:+.2f}"
    if (frame["epoch"].dropna() % 1 == 0).all():
        from matplotlib.ticker import MaxNLocator

        loss_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    gap_ax.set_title(title, fontsize=10, loc="left")
    gap_ax.set_ylabel("gap")
    loss_ax.set_ylabel("loss")
    loss_ax.set_xlabel("epoch" + (f" ({folds} folds)" if folds > 1 else ""))
    handles, labels = [], []
    for ax in (gap_ax, loss_ax):
        ax.grid(True, alpha=0.25, linewidth=0.6)
        ax.tick_params(labelsize=8)
        more = ax.get_legend_handles_labels()
        handles += more[0]
        labels += more[1]
    # One legend under both panels, so no curve hides behind it.
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7.5, frameon=False,
               handlelength=1.8, columnspacing=1.2)
    rows = -(-len(labels) // 3)
    fig.tight_layout(h_pad=0.4, rect=(0, 0.035 * rows + 0.01, 1, 1))
    return fig


def _draw_gap(ax, frame, verdict, verdict_fold=None) -> None:
    both = frame.dropna(subset=["gap"])
    if not len(both):
        return
    own = both[both["fold"] == verdict_fold]
    if len(own) and both["fold"].nunique() > 1 and getattr(verdict, "folds", 0) == 1:
        # The verdict read this fold alone (the monitor); the median over folds trained
        # otherwise (shifted images, a bigger split) would not show what it read.
        ax.plot(own["epoch"], own["gap"], color=_VERDICT_COLOR, linewidth=1.6,
                label=f"fold {verdict_fold}'s gap (the verdict's)")
        _draw_reference(ax, own.set_index("epoch")["gap"], verdict)
        verdict = None
    folds = both["fold"].nunique()
    per_epoch = both.groupby("epoch")["gap"]
    curve = per_epoch.median()
    low, high, count = per_epoch.min(), per_epoch.max(), per_epoch.count()
    ax.axhline(0, color="#999999", linewidth=0.8)
    full = count == folds
    if folds > 1:
        ax.fill_between(curve.index, low, high, where=full.to_numpy(), color=_GAP_COLOR,
                        alpha=0.18, linewidth=0, label=f"range over the {folds} folds")
    ax.plot(curve.index, curve.where(full), color=_GAP_COLOR, linewidth=2.2,
            label="gap, median over folds" if folds > 1 else "gap")
    if not full.all():
        # Epochs only some folds reached: a thin line, on a grey ground, and said in words.
        partial = curve.index[~full.to_numpy()]
        joined = curve.where(~full | ~full.shift(-1, fill_value=True))
        ax.plot(curve.index, joined, color=_GAP_COLOR, linewidth=1.0, alpha=0.8,
                label="gap where only some folds still train")
        ax.axvspan(partial.min(), partial.max(), color="#888888", alpha=0.08, linewidth=0)
        names = sorted(both.loc[both["epoch"] >= partial.min(), "fold"].unique())
        who = (f"fold {names[0]} only" if len(names) == 1 and count[partial].max() == 1
               else f"{int(count[partial].max())} down to {int(count[partial].min())} of "
                    f"{folds} folds")
        ax.text(partial.min(), 0.96, f" epochs {_fmt_epoch(partial.min())}-"
                f"{_fmt_epoch(partial.max())}: {who}", transform=ax.get_xaxis_transform(),
                fontsize=7.5, color="#555555", va="top")
    if verdict is not None:
        _draw_reference(ax, curve, verdict)


def _draw_reference(ax, curve, verdict) -> None:
    """The steep threshold and the verdict's own trend over the later half it was read on."""
    from .gap import STEEP_GROWTH

    start = getattr(verdict, "window_start", None)
    end = getattr(verdict, "last_epoch", None)
    if start is None or end is None or verdict.scale is None or verdict.slope is None:
        return
    later = curve[(curve.index >= start) & (curve.index <= end)].dropna()
    if not len(later) or end <= start:
        return
    slope = verdict.slope * verdict.scale  # loss units per epoch
    anchor = float((later - slope * (later.index - start)).median())
    steep = STEEP_GROWTH * verdict.scale / (2 * (end - start))  # per epoch, as the rule reads it
    xs = [start, end]
    ax.plot(xs, [anchor, anchor + steep * (end - start)], color="#555555", linestyle="--",
            linewidth=1.1, label=f"steep from here (growth {STEEP_GROWTH:+.2f})")
    ax.plot(xs, [anchor, anchor + slope * (end - start)], color="#222222", linewidth=1.4,
            label=f"trend read (growth {verdict.growth:+.2f})")


def _draw_losses(ax, frame) -> None:
    folds = list(dict.fromkeys(frame["fold"]))
    if not folds:  # no curves at all (scan --pred-probs without --history)
        return
    alpha = 1.0 if len(folds) == 1 else max(0.35, 1.0 / len(folds) ** 0.5)
    for i, fold in enumerate(folds):
        part = frame[frame["fold"] == fold]
        train = part.dropna(subset=["train_loss"])
        val = part.dropna(subset=["val_loss"])
        ax.plot(train["epoch"], train["train_loss"], color=_TRAIN_COLOR, alpha=alpha,
                linewidth=1.2, label="train loss" if i == 0 else None)
        ax.plot(val["epoch"], val["val_loss"], color=_VAL_COLOR, alpha=alpha, linewidth=1.2,
                label="validation loss" if i == 0 else None)
        if len(val):
            best = val.loc[val["val_loss"].idxmin()]
            ax.plot([best["epoch"]], [best["val_loss"]], "o", color="#222222", markersize=4,
                    label=("best validation epoch, each fold" if len(folds) > 1 else
                           f"best validation epoch ({_fmt_epoch(best['epoch'])})")
                    if i == 0 else None)


def _fmt_epoch(epoch) -> str:
    epoch = float(epoch)
    return str(int(epoch)) if epoch.is_integer() else f"{epoch:.2f}"


def _render(history, fmt: str, *, verdict=None, verdict_fold=None) -> bytes:
    import matplotlib

    buffer = io.BytesIO()
    # A fixed salt keeps the SVG's element ids, and so the file, the same run to run; text as
    # paths keeps it independent of the fonts installed where the report is opened.
    with matplotlib.rc_context({"svg.hashsalt": "labelaudit", "svg.fonttype": "path"}):
        fig = _figure(history, verdict=verdict, verdict_fold=verdict_fold)
        if fmt == "svg":
            fig.savefig(buffer, format="svg", metadata=dict.fromkeys(
                ("Date", "Creator", "Format", "Type")))
            # Drop the XML prolog and its DTD URL: the SVG is meant to be inlined in HTML.
            text = buffer.getvalue().decode("utf-8")
            return text[text.index("<svg"):].encode("utf-8")
        fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def history_svg(history, *, verdict=None, verdict_fold=None) -> str:
    """Return an inline SVG of train/validation loss per epoch for every fold, gap shaded.

    `history` is a DataFrame (or records) with epoch, train_loss, val_loss and optionally fold;
    `verdict` (a gap.GapVerdict) adds its regime and marks the best-validation and climb-start
    epochs; `verdict_fold` names the fold it was read on (see `_figure`).

    >>> import pandas as pd
    >>> h = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.6, 0.4],
    ...                   "val_loss": [1.1, 0.8, 0.9]})
    >>> history_svg(h).startswith("<svg")
    True
    """
    return _render(history, "svg", verdict=verdict, verdict_fold=verdict_fold).decode("utf-8")


def check_plot_path(path) -> Path:
    """Refuse a plot path that cannot be written: not .svg/.png, a folder, or in no writable folder.

    Missing folders are refused, not created: a typo in the path should not grow folders.

    >>> check_plot_path("curves.svg")
    PosixPath('curves.svg')
    """
    import os

    path = Path(path)
    if path.suffix.lower().lstrip(".") not in PLOT_FORMATS:
        raise UsageError(f"cannot write a plot to {path}: use a .svg or .png file name "
                         f"(got {path.suffix or 'no extension'!r})")
    if path.is_dir():
        raise UsageError(f"cannot write a plot to {path}: it is a folder; name a file in it, "
                         f"e.g. {path / 'curves.svg'}")
    parent = path.parent
    # The nearest part of the path that exists says what is wrong: a file, or a missing folder.
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UsageError(f"cannot write a plot to {path}: {existing} is a file, not a folder; "
                         "choose another --plot path")
    if existing != parent:
        raise UsageError(f"cannot write a plot to {path}: the folder {parent} does not exist; "
                         f"create it first (mkdir -p {parent}) or choose another --plot path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write a plot to {path}: no permission to write in the folder "
                         f"{parent}; choose another --plot path")
    return path


def save_history_plot(history, path, *, verdict=None) -> Path:
    """Write the loss curves to `path`, as SVG or PNG by its extension; return the path.

    >>> import pandas as pd, tempfile
    >>> h = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.6, 0.4],
    ...                   "val_loss": [1.1, 0.8, 0.9]})
    >>> folder = tempfile.mkdtemp()
    >>> save_history_plot(h, f"{folder}/curves.png").name
    'curves.png'
    """
    path = check_plot_path(path)
    data = _render(history, path.suffix.lower().lstrip("."), verdict=verdict)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:  # checked above, but a disk can fill or a folder vanish meanwhile
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise UsageError(f"cannot write a plot to {path} ({exc.strerror or exc}); free some "
                         "space or choose another --plot path") from None
    return path
