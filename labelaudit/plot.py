"""Plot loss histories: train and validation loss per epoch for every fold, the gap shaded.

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


def _figure(history, *, verdict=None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .gap import history_frame

    frame = history_frame(history)
    # A diverged run can log losses near float's maximum, where matplotlib cannot scale an axis
    # (it fails with a singular matrix); they are left out like inf, as a break in the curve.
    losses = frame[["train_loss", "val_loss"]].astype(float)
    frame[["train_loss", "val_loss"]] = losses.where(losses.abs() < 1e300)

    # A bare Figure on the Agg canvas: no pyplot state, so no global backend switch and no
    # figures left open when called from a long-running process.
    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    folds = list(dict.fromkeys(frame["fold"]))
    # One fold is drawn fully opaque; with several, each is lighter so their spread shows.
    alpha = 1.0 if len(folds) == 1 else max(0.35, 1.0 / len(folds) ** 0.5)
    for i, fold in enumerate(folds):
        part = frame[frame["fold"] == fold]
        both = part.dropna(subset=["train_loss", "val_loss"])
        ax.fill_between(both["epoch"], both["train_loss"], both["val_loss"],
                        where=both["val_loss"] >= both["train_loss"], interpolate=True,
                        color=_GAP_COLOR, alpha=0.12 * alpha, linewidth=0,
                        label="gap (val - train)" if i == 0 else None)
        train = part.dropna(subset=["train_loss"])
        val = part.dropna(subset=["val_loss"])
        ax.plot(train["epoch"], train["train_loss"], color=_TRAIN_COLOR, alpha=alpha,
                linewidth=1.4, label="train loss" if i == 0 else None)
        ax.plot(val["epoch"], val["val_loss"], color=_VAL_COLOR, alpha=alpha, linewidth=1.4,
                label="validation loss" if i == 0 else None)

    best = getattr(verdict, "best_val_epoch", None) if verdict is not None else None
    if best is None and len(frame.dropna(subset=["val_loss"])):
        best = frame.groupby("epoch")["val_loss"].mean().idxmin()
    if best is not None:
        ax.axvline(best, color="#555555", linestyle="--", linewidth=1,
                   label=f"best validation epoch ({_fmt_epoch(best)})")
    climb = getattr(verdict, "climb_start_epoch", None) if verdict is not None else None
    if climb is not None:
        ax.axvline(climb, color=_GAP_COLOR, linestyle=":", linewidth=1,
                   label=f"gap starts climbing ({_fmt_epoch(climb)})")

    title = "Loss per epoch" + (f" ({len(folds)} folds)" if len(folds) > 1 else "")
    if verdict is not None:
        title += f": {verdict.regime}"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.25, linewidth=0.6)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _fmt_epoch(epoch) -> str:
    epoch = float(epoch)
    return str(int(epoch)) if epoch.is_integer() else f"{epoch:.2f}"


def _render(history, fmt: str, *, verdict=None) -> bytes:
    import matplotlib

    buffer = io.BytesIO()
    # A fixed salt keeps the SVG's element ids, and so the file, the same run to run; text as
    # paths keeps it independent of the fonts installed where the report is opened.
    with matplotlib.rc_context({"svg.hashsalt": "labelaudit", "svg.fonttype": "path"}):
        fig = _figure(history, verdict=verdict)
        if fmt == "svg":
            fig.savefig(buffer, format="svg", metadata=dict.fromkeys(
                ("Date", "Creator", "Format", "Type")))
            # Drop the XML prolog and its DTD URL: the SVG is meant to be inlined in HTML.
            text = buffer.getvalue().decode("utf-8")
            return text[text.index("<svg"):].encode("utf-8")
        fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def history_svg(history, *, verdict=None) -> str:
    """Return an inline SVG of train/validation loss per epoch for every fold, gap shaded.

    `history` is a DataFrame (or records) with epoch, train_loss, val_loss and optionally fold;
    `verdict` (a gap.GapVerdict) adds its regime and marks the best-validation and climb-start
    epochs.

    >>> import pandas as pd
    >>> h = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.6, 0.4],
    ...                   "val_loss": [1.1, 0.8, 0.9]})
    >>> history_svg(h).startswith("<svg")
    True
    """
    return _render(history, "svg", verdict=verdict).decode("utf-8")


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
