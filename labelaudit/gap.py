"""Diagnose the generalization gap (validation loss minus training loss) over epochs.

The verdict comes from the *later half* of the run (the epochs after the midpoint of the first
and last epoch), where early learning no longer dominates, and is expressed relative to the
**loss scale** ``s``: the median over folds of the training loss at the first recorded epoch (the
loss of a barely trained model, about log(K) for K classes from scratch). Dividing by ``s`` makes
every number below independent of the loss's units; multiplying all losses by a constant changes
nothing.

**Trend.** The gap's slope is Sen's estimator (the median of the slopes between every pair of
epochs), robust to a few noisy epochs. With several folds only pairs within a fold are used and
their slopes pooled (Hirsch's seasonal-Kendall slope, folds as seasons), so fold-to-fold offsets
do not count as a trend; its 90% confidence interval comes from the pooled Kendall statistic's
variance. The same estimator gives the training and validation losses' slopes.

**Growth.** ``growth = slope * (last epoch - first epoch) / s``: how much of the loss scale the gap
would gain over a run as long as this one at its later-half rate. It does not depend on the
epoch unit (steps, fractional epochs) either. ``train_change`` and ``val_change`` are the same
quantity for the two losses.

**Rules, checked in this order:**

1. ``too-little-evidence`` when fewer than ``MIN_EPOCHS`` epochs have both losses.
2. ``steep-climb`` when ``growth >= STEEP_GROWTH`` with the gap slope's confidence interval
   above zero and the validation loss not significantly falling (interval upper bound at or
   above zero), **and** at the best-validation epoch, where the model stopped generalising
   better, the training loss was still at least ``UNLEARNED * s`` (``train_at_best``). That is
   the signature of wrong labels: a share of the training set that the rest does not explain,
   which the model can only fit by rote (``train_fall_after_best`` shows how far it got) while
   held-out loss rises. A gap that grows only because the validation loss rises after the
   training loss reached its floor is over-confidence on a few hard held-out samples (rule 5),
   not this. Both losses are read from the median curves over folds, smoothed with a rolling
   median of three epochs; the training loss is taken at the last epoch whose validation loss
   is within ``PLATEAU_TOL * s`` of the best (on a flat stretch noise alone picks the minimum).
3. ``underfitting`` when the later half's median training loss is above ``UNDERFIT * s``, or
   it lies less than ``FALLING * s`` below the first epoch's (the median, so that one unstable
   epoch at the end does not count).
4. ``too-little-evidence`` when the gap-growth interval holds both zero and ``STEEP_GROWTH``:
   the curves are too noisy to tell a flat gap from a steep climb.
5. ``over-parametrized`` when the validation loss is not falling (``val_change >= -FALLING``)
   while the training loss still is (``train_change``'s whole interval at or below
   ``-FALLING``) or the gap still grows (``growth``'s whole interval at or above ``FALLING``):
   the model keeps fitting the training set, or grows ever more confident on held-out samples
   it gets wrong.
6. ``converged`` otherwise: the gap has stopped growing within noise.

A scan's monitor also records per-sample curves (``LABEL_COLUMNS``), read at its best epoch
between rules 2 and 3 (``_wrong_labels``): ``steep-climb`` when it still gets ``WRONG_LABELS`` of
its training labels wrong, or confident learning flags ``HELD_OUT_EXCESS`` more of the held-out
labels; and, for a network that cannot fit the labels (rule 3's training loss), when it refuses
``CONTRADICTED`` of the held-out labels outright. ``steep_by`` names the rule.

The evidence also names each fold's own best-validation epoch (their median and range), the
epochs only some folds reached, and where the gap's trend turns upward (the knee of a two-piece
line fitted to every fold's gap, when the gap has since grown by at least ``CLIMB_MIN * s``).
With ``n_classes`` (a scan) the loss scale is at least ``SCALE_FLOOR * log(n_classes)``.
The thresholds were tuned on the calibration benchmark
(benchmarks/gap_calibration.py, see benchmarks/README.md), never per dataset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

MIN_EPOCHS = 6
# Gap growth over the run, in loss scales, at which the climb counts as steep.
STEEP_GROWTH = 0.15
# A loss change (in loss scales, over the run) smaller than this is no real change.
FALLING = 0.05
# For a steep climb the training loss at the best-validation epoch must be at least this (in loss
# scales): the part of the training set the model had not fit when it stopped generalising.
UNLEARNED = 0.15
# Final training loss above this fraction of the scale: the model did not fit.
UNDERFIT = 0.6
# The gap must have risen this much (in loss scales) from its low to name a climb start.
CLIMB_MIN = 0.05
# Two-sided confidence level of the slope intervals.
CONFIDENCE = 0.90
# Logs with more points than this (per-step logging) are averaged into this many bins first,
# which keeps the pairwise-slope estimator cheap and changes no trend.
MAX_POINTS = 200
# Validation losses within this much (in loss scales) of the best form the best plateau; the
# training loss is read at its last epoch, since noise alone picks the minimum on a plateau.
PLATEAU_TOL = 0.01
# With the number of classes K known (a scan), the loss scale is at least this share of log(K),
# the loss of a uniform guess: a network that fits most of the data within its first epoch
# (breast cancer) otherwise gets a tiny scale, and every gap looks steep against it.
SCALE_FLOOR = 0.5
# With the per-sample curves of a scan: at its best validation epoch the network still gets at
# least this share of its training labels wrong (it stays below on clean data).
WRONG_LABELS = 0.035
# Or confident learning flags this much more of the held-out labels (median over the epochs from
# the best on) than the network still gets wrong of its training labels: it memorised the
# training part's share of wrong labels before its validation loss bottomed out (text).
HELD_OUT_EXCESS = 0.04
# Held-out parts smaller than this are not read: a few samples swing the share by whole points.
MIN_HELD_OUT = 100
# A network that cannot fit the training labels still shows wrong ones when it contradicts at
# least this share of the held-out labels outright (their probability under CONTRADICTED_P): a
# model too weak for its data hedges near its class boundaries and contradicts almost none.
CONTRADICTED = 0.035
CONTRADICTED_P = 0.1
REGIMES = ("converged", "over-parametrized", "steep-climb", "underfitting",
           "too-little-evidence")

ADVICE = {
    "converged": "The gap has stopped growing: the fit is in a decent place. If the metric is "
                 "not good enough, improve the model or the features.",
    "over-parametrized": "Training loss is still falling while validation loss is not: the model "
                         "has more capacity than the data supports. Simplify or regularize it "
                         "(fewer layers or units, dropout, L1/L2, batch normalization), or stop "
                         "at the best-validation epoch.",
    "steep-climb": "The gap is climbing steeply: suspect the dataset, above all wrongly assigned "
                   "labels. Inspect the flagged samples by hand (labelaudit scan ranks them).",
    "underfitting": "Training loss is high or not falling: give the model more capacity, train "
                    "longer, or improve the features or the learning rate. On a large dataset "
                    "a loss that levels off high with a small gap is also what many wrongly "
                    "assigned labels look like to a model too small to memorise them: check "
                    "the labels with labelaudit scan --audit always.",
    "too-little-evidence": "Too few epochs or too noisy curves to say; train for more epochs "
                           "(or validate on more samples) before drawing conclusions.",
}

# The same verdicts read on labelaudit's own network in `labelaudit scan`: the model is not
# yours to change, so the advice says what the verdict means for your data and what to do next.
SCAN_ADVICE = {
    "converged": "The gap has stopped growing on your data: no sign of label errors at this "
                 "size. To check the labels anyway, scan with --audit always.",
    "over-parametrized": "labelaudit's network keeps fitting the training split while "
                         "validation loss stays flat: ordinary overfitting on your data, not the "
                         "steep climb that wrong labels cause. No sign of label errors at this "
                         "size; --audit always checks the labels anyway.",
    "steep-climb": "The curves show wrong labels: part of your training labels is not "
                   "explained by the rest, so the network can only fit them by rote (the gap's "
                   "climb is made of that), the signature of wrongly assigned labels, or of "
                   "classes your features cannot tell apart (keep those). Review the flagged "
                   "samples in report.html, most likely errors first (after --audit never, "
                   "scan again without it to rank them).",
    "underfitting": "labelaudit's network could not fit your data closely: the classes may "
                    "overlap in these features, or, on a large dataset, many wrong labels can "
                    "look like this. The curves cannot rule label errors out; --audit always "
                    "checks them.",
    "too-little-evidence": "The curves are too short or too noisy to read, usually because "
                           "the folds hold few samples. Scan with more --epochs, or with "
                           "--audit always to check the labels regardless.",
}


def for_scan(verdict: GapVerdict) -> GapVerdict:
    """The verdict with the advice for a scan of your data (SCAN_ADVICE), not for your model.

    >>> for_scan(_verdict("converged")).advice == SCAN_ADVICE["converged"]
    True
    """
    from dataclasses import replace

    return replace(verdict, advice=SCAN_ADVICE[verdict.regime])


@dataclass(frozen=True)
class GapVerdict:
    """The diagnosis of one set of loss curves, with its evidence and advice.

    Slopes are per epoch and, like `growth`, relative to the loss `scale`; `None` where the
    curves were too short to measure them.
    """

    regime: str
    steep: bool
    slope: float | None  # gap slope per epoch over the later half, relative to the loss scale
    slope_low: float | None  # its confidence interval (CONFIDENCE)
    slope_high: float | None
    growth: float | None  # slope * run length: relative gap growth over the run
    climb_start_epoch: float | None
    best_val_epoch: float | None
    epochs: int  # distinct epochs with both losses
    scale: float | None  # training loss at the first epoch (median over folds)
    # Advice depends on who reads the verdict (a scan of your data, or your own training log),
    # not on the curves: two verdicts on the same curves are equal whatever their advice.
    advice: str = field(compare=False)
    evidence: list[str] = field(default_factory=list)
    folds: int = 0
    train_change: float | None = None  # train-loss slope * run length / scale
    val_change: float | None = None
    final_train: float | None = None  # last epoch's training loss / scale
    train_at_best: float | None = None  # training loss at the best-validation epoch / scale
    train_fall_after_best: float | None = None  # its fall from there to the end / scale
    final_gap: float | None = None  # last epoch's gap / scale
    window_start: float | None = None  # first epoch of the later half
    last_epoch: float | None = None
    best_val_epochs: list = field(default_factory=list)  # each fold's own, in epoch order
    # What made a steep-climb: "gap" (the loss curves), "training-labels", "held-out-labels" or
    # "contradicted-labels" (the per-sample curves); None for the other verdicts.
    steep_by: str | None = None
    # The per-sample curves of a scan's monitor (None for a log of your own), at the best epoch:
    train_error_epoch: float | None = None  # where the best plateau starts: they are read there
    train_error_at_best: float | None = None  # share of training labels not the top class
    train_error_fall_after_best: float | None = None  # its fall from there to the end
    val_flagged_after_best: float | None = None  # share of held-out labels confident learning
    # flags, median over the epochs from the best on (None below MIN_HELD_OUT held-out samples)
    val_contradicted_after_best: float | None = None  # share of held-out labels under
    # CONTRADICTED_P, median over the same epochs

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (summary.json's `gap`, `labelaudit gap --json`)."""
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# The robust trend


@dataclass(frozen=True)
class Trend:
    """Sen's slope pooled over groups, with its confidence interval."""

    slope: float
    low: float
    high: float


def pooled_sen_slope(x, y, groups=None, *, confidence: float = CONFIDENCE) -> Trend:
    """Median of within-group pairwise slopes, with a Kendall-based confidence interval.

    With one group this is the Theil-Sen slope and the interval of
    `scipy.stats.theilslopes` (without its tie correction); with several it is Hirsch's
    seasonal-Kendall slope, so offsets between groups are not mistaken for a trend.

    >>> t = pooled_sen_slope([1, 2, 3, 4, 1, 2, 3, 4], [1, 2, 3, 4, 11, 12, 13, 14],
    ...                      [0, 0, 0, 0, 1, 1, 1, 1])
    >>> t.slope, t.low <= 1.0 <= t.high
    (1.0, True)
    """
    from scipy.stats import norm

    x, y = np.asarray(x, float), np.asarray(y, float)
    groups = np.zeros(len(x), int) if groups is None else np.asarray(groups)
    slopes, variance = [], 0.0
    for g in np.unique(groups):
        gx, gy = x[groups == g], y[groups == g]
        i, j = np.triu_indices(len(gx), k=1)
        dx = gx[j] - gx[i]
        keep = dx != 0
        slopes.append((gy[j] - gy[i])[keep] / dx[keep])
        n = len(gx)
        variance += n * (n - 1) * (2 * n + 5) / 18.0
    slopes = np.sort(np.concatenate(slopes)) if slopes else np.empty(0)
    if not len(slopes):
        return Trend(0.0, 0.0, 0.0)
    slope = float(np.median(slopes))
    z = norm.ppf(0.5 + confidence / 2)
    spread = z * np.sqrt(variance)
    n_slopes = len(slopes)
    # The rank positions of Sen (1968), eq. 2.6, as scipy.stats.theilslopes takes them.
    lo = int(np.clip(np.round((n_slopes - spread) / 2.0) - 1, 0, n_slopes - 1))
    hi = int(np.clip(np.round((n_slopes + spread) / 2.0), 0, n_slopes - 1))
    return Trend(slope, float(slopes[lo]), float(slopes[hi]))


# ---------------------------------------------------------------------------------------------
# The diagnosis


HISTORY_COLUMNS = ("fold", "epoch", "train_loss", "val_loss")
# Per-sample curves a scan's monitor adds (models.TorchClassifier's track_labels).
LABEL_COLUMNS = ("train_error", "val_flagged", "val_contradicted")


def history_frame(rows):
    """The one loss-history table: fold, epoch, train_loss, val_loss and gap, by fold and epoch.

    `rows` is a DataFrame, records or a dict of columns with epoch, train_loss and val_loss, and
    optionally fold (1 where absent); values that are not numbers become missing.

    >>> history_frame([{"epoch": 2, "train_loss": 0.5, "val_loss": 0.75},
    ...                {"epoch": 1, "train_loss": 1.0, "val_loss": 1.0}]).to_dict("list")
    {'fold': [1, 1], 'epoch': [1, 2], 'train_loss': [1.0, 0.5], 'val_loss': [1.0, 0.75], \
'gap': [0.0, 0.25]}
    """
    import pandas as pd

    frame = pd.DataFrame(rows)
    if not len(frame.columns):  # no rows at all: an empty table, not a missing column
        frame = pd.DataFrame(columns=list(HISTORY_COLUMNS))
    missing = set(HISTORY_COLUMNS[1:]) - set(frame.columns)
    if missing:
        from .errors import UsageError

        raise UsageError(f"the loss history lacks columns it needs (epoch, train_loss, "
                         f"val_loss): missing {', '.join(sorted(missing))}; it has "
                         f"{', '.join(map(str, frame.columns)) or 'none'}")
    if "fold" not in frame:
        frame = frame.assign(fold=1)
    extra = [c for c in LABEL_COLUMNS if c in frame and frame[c].notna().any()]
    frame = frame[list(HISTORY_COLUMNS) + extra].copy()
    for column in list(HISTORY_COLUMNS[1:]) + extra:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame.insert(len(HISTORY_COLUMNS), "gap", frame["val_loss"] - frame["train_loss"])
    return frame.sort_values(["fold", "epoch"], kind="stable").reset_index(drop=True)


def _tidy(history):
    frame = history_frame(history).drop(columns="gap")  # recomputed after averaging repeats
    frame[list(HISTORY_COLUMNS[1:])] = frame[list(HISTORY_COLUMNS[1:])].astype(float)
    frame = frame[np.isfinite(frame[list(HISTORY_COLUMNS[1:])]).all(axis=1)]
    # A repeated (fold, epoch) row, e.g. a resumed run, counts once: its mean.
    frame = frame.groupby(["fold", "epoch"], as_index=False, sort=True).mean()
    frame["gap"] = frame["val_loss"] - frame["train_loss"]
    return frame


def _coarsen(frame):
    edges = np.linspace(frame["epoch"].min(), frame["epoch"].max(), MAX_POINTS + 1)
    bins = np.clip(np.searchsorted(edges, frame["epoch"], side="right") - 1, 0, MAX_POINTS - 1)
    return frame.groupby([frame["fold"], bins], as_index=False, sort=True).mean()[
        ["fold", "epoch", "train_loss", "val_loss", "gap",
         *(c for c in LABEL_COLUMNS if c in frame)]]


def _scale(frame) -> float:
    firsts = frame.loc[frame.groupby("fold")["epoch"].idxmin(), "train_loss"].abs()
    scale = float(firsts.median())
    if not scale > 0:
        # A first loss of exactly zero says nothing about units; fall back on the largest loss.
        scale = float(frame[["train_loss", "val_loss"]].abs().to_numpy().max())
    return scale


def _label_signs(frame, scale: float) -> dict:
    """The per-sample curves read from each fold's own best validation epoch (medians over
    folds): ``train_error_at_best``, its ``train_error_fall_after_best`` to the last epoch, and
    ``val_flagged_after_best``; empty without those curves (a log of your own).

    The best epoch here is the first whose validation loss is within ``PLATEAU_TOL * scale`` of
    the fold's lowest: on a small held-out part noise alone picks the lowest among near-equal
    epochs, and the network memorises more wrong labels with every epoch it trains on."""
    if "train_error" not in frame or frame["train_error"].isna().all():
        return {}
    at_best, fall, flagged, contradicted, epochs = [], [], [], [], []
    # Only the monitor fold carries them; the others in a scan's history.csv do not.
    for _, part in frame[frame.groupby("fold")["train_error"].transform("count") > 0].groupby(
            "fold"):
        first = part.loc[part["val_loss"] <= part["val_loss"].min() + PLATEAU_TOL * scale,
                         "epoch"].min()
        epochs.append(first)
        after = part[part["epoch"] >= first]
        at_best.append(after["train_error"].iloc[0])
        fall.append(after["train_error"].iloc[0] - after["train_error"].iloc[-1])
        for column, found in (("val_flagged", flagged), ("val_contradicted", contradicted)):
            if column in after and after[column].notna().any():
                found.append(after[column].median())
    return {"train_error_epoch": _epoch(np.median(epochs)),
            "train_error_at_best": float(np.median(at_best)),
            "train_error_fall_after_best": float(np.median(fall)),
            "val_flagged_after_best": float(np.median(flagged)) if flagged else None,
            "val_contradicted_after_best": (float(np.median(contradicted)) if contradicted
                                            else None)}


def _signs_line(signs: dict) -> str:
    """The evidence line of the per-sample curves (_label_signs), each held-out share where
    there is one."""
    parts = [f"training error where the validation loss first reached its best (epoch "
             f"{signs['train_error_epoch']}): {signs['train_error_at_best']:.1%}, fallen by "
             f"{signs['train_error_fall_after_best']:.1%} since"]
    for key, what in (("val_flagged_after_best",
                       "held-out labels confident learning flags from then on"),
                      ("val_contradicted_after_best",
                       f"held-out labels given under {CONTRADICTED_P:g}")):
        if signs[key] is not None:
            parts.append(f"{what}: {signs[key]:.1%}")
    return "; ".join(parts)


def _wrong_labels(signs: dict, later_train: float) -> tuple[str, str] | None:
    """(which curves, the rule's sentence) when the per-sample curves show wrong labels.

    At its best validation epoch a network has learned what the data explain; training labels
    it still gets wrong then are the ones the rest contradicts. Where it memorised them before
    that (sparse, high-dimensional text), the held-out labels that confident learning flags
    from that epoch on, beyond the training error left, speak instead. A network that cannot
    fit the labels (underfitting) speaks only through the held-out labels it contradicts
    outright: it refuses wrong labels confidently, and hedges where it is merely too weak."""
    wrong, flagged = signs.get("train_error_at_best"), signs.get("val_flagged_after_best")
    if wrong is None:
        return None
    if later_train > UNDERFIT:
        contradicted = signs.get("val_contradicted_after_best")
        if contradicted is None or contradicted < CONTRADICTED:
            return None
        return "contradicted-labels", (
            f"rule: the network cannot fit {wrong:.1%} of its training labels, and from where "
            f"its validation loss first reached its best (epoch {signs['train_error_epoch']}) "
            f"on it gives {contradicted:.1%} of the held-out labels a probability under "
            f"{CONTRADICTED_P:g} (from {CONTRADICTED:.1%}): it refuses them outright, as it "
            "refuses wrong labels, where a network too weak for its data would hedge")
    if wrong >= WRONG_LABELS:
        return "training-labels", (
            f"rule: where its validation loss first reached its best (epoch "
            f"{signs['train_error_epoch']}) the network still got {wrong:.1%} of its "
            f"training labels wrong (from {WRONG_LABELS:.1%}: labels the rest of the data does "
            "not explain, the signature of wrong labels), and the training error fell by "
            f"{signs['train_error_fall_after_best']:.1%} after it as the network memorised "
            "them: that memorising is what the gap's climb is made of")
    if flagged is not None and flagged - wrong >= HELD_OUT_EXCESS:
        return "held-out-labels", (
            f"rule: from where its validation loss first reached its best (epoch "
            f"{signs['train_error_epoch']}) on, confident learning flags {flagged:.1%} "
            f"of the held-out labels while the network gets only {wrong:.1%} of its training "
            f"labels wrong (a difference from {HELD_OUT_EXCESS:.0%}): it memorised the training "
            "part's wrong labels before its validation loss bottomed out, too early for the gap "
            "to show them")
    return None


def _climb_start(frame, scale: float) -> float | None:
    """Where the gap's trend turns upward: the knee of a two-piece line fitted to every fold.

    Each fold keeps its own offset, so folds that stop at different epochs do not fake a turn.
    None when the fitted climb from the knee to the last epoch is under CLIMB_MIN * scale.
    """
    epochs = np.sort(frame["epoch"].unique())
    if len(epochs) < 4:
        return None
    t = frame["epoch"].to_numpy(float)
    offsets = (frame["fold"].to_numpy()[:, None] == frame["fold"].unique()[None, :]).astype(float)
    y = frame["gap"].to_numpy(float)
    n = len(y)
    best = None
    for knee in epochs[:-2]:
        after = np.maximum(t - knee, 0.0)
        # At the first epoch there is no trend before the knee: a straight climb from the start.
        columns = [offsets, after] if knee == epochs[0] else [offsets, t, after]
        design = np.column_stack(columns)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        before_slope = 0.0 if knee == epochs[0] else coef[-2]
        after_slope = before_slope + coef[-1]
        rise = after_slope * (epochs[-1] - knee) / scale
        # A turn upward: the gap climbs at least twice as fast after the knee as before it.
        if not (after_slope > 2 * max(before_slope, 0.0) and rise >= CLIMB_MIN):
            continue
        sse = max(float(np.sum((design @ coef - y) ** 2)), 1e-12 * scale**2 * n)
        if knee != epochs[0] and not _turn_is_clear(design, coef[-1], sse):
            continue
        # BIC: a knee later than the start costs one more parameter, so noise alone does not
        # move a straight climb's start.
        score = n * np.log(sse / n) + design.shape[1] * np.log(n)
        if best is None or score < best[0] - 1e-9:
            best = (score, knee)
    return None if best is None else _epoch(best[1])


def _turn_is_clear(design, turn: float, sse: float) -> bool:
    """Whether the change of slope at the knee is at least three standard errors."""
    dof = len(design) - design.shape[1]
    if dof <= 0:
        return False
    cov = np.linalg.pinv(design.T @ design) * sse / dof
    return turn > 3 * np.sqrt(max(cov[-1, -1], 0.0))


def fold_facts(history) -> dict:
    """Each fold's own best validation epoch, and the epochs only some folds reached.

    Returns ``best_epochs`` (fold -> epoch of its lowest validation loss), ``best_epoch`` (their
    median), and ``partial`` ((first, last, folds) for each run of epochs that not every fold
    has, folds as a tuple), and ``lines``: the evidence sentences saying so.

    >>> import pandas as pd
    >>> h = pd.DataFrame({"fold": [1] * 6 + [2] * 3, "epoch": [1, 2, 3, 4, 5, 6, 1, 2, 3],
    ...                   "train_loss": [1.0] * 9,
    ...                   "val_loss": [3, 2, 1, 2, 3, 4, 3, 1, 2]})
    >>> facts = fold_facts(h)
    >>> facts["best_epochs"], facts["lines"][-1]
    ({1: 3, 2: 2}, 'epochs 4-6: fold 1 only')
    """
    frame = _tidy(history)
    if not len(frame):
        return {"best_epochs": {}, "best_epoch": None, "partial": [], "lines": []}
    best = {_plain(fold): _epoch(part.loc[part["val_loss"].idxmin(), "epoch"])
            for fold, part in frame.groupby("fold")}
    median = _epoch(np.median(list(best.values())))
    n = len(best)
    lines = []
    if n > 1:
        lo, hi = min(best.values()), max(best.values())
        lines.append(f"best validation epoch, each fold's own: median {median}, range {lo} to "
                     f"{hi} over {n} folds")
    folds_at = frame.groupby("epoch")["fold"].apply(lambda f: tuple(sorted(f)))
    partial = []
    for epoch, folds in folds_at.items():
        if len(folds) == n:
            continue
        if partial and partial[-1][2] == folds and partial[-1][3] == _previous(folds_at, epoch):
            partial[-1] = (partial[-1][0], _epoch(epoch), folds, _epoch(epoch))
        else:
            partial.append((_epoch(epoch), _epoch(epoch), folds, _epoch(epoch)))
    partial = [(first, last, folds) for first, last, folds, _ in partial]
    for first, last, folds in partial:
        who = (f"fold {folds[0]} only" if len(folds) == 1 else
               f"folds {', '.join(map(str, folds))} only ({len(folds)} of {n})")
        lines.append(f"epoch{'s' if last != first else ''} "
                     f"{first}{f'-{last}' if last != first else ''}: {who}")
    return {"best_epochs": best, "best_epoch": median, "partial": partial, "lines": lines}


def _plain(value):
    """A numpy scalar as its Python value (fold names as they read in JSON and evidence)."""
    return value.item() if hasattr(value, "item") else value


def _previous(series, epoch):
    position = series.index.get_loc(epoch)
    return _epoch(series.index[position - 1]) if position else None


def _epoch(value) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() else value


def diagnose(history, *, n_classes: int | None = None) -> GapVerdict:
    """Diagnose a loss history: a DataFrame (or records) with epoch, train_loss, val_loss [, fold].

    Every fold's curve is used. The rule is documented in this module's docstring. With
    `n_classes` (a scan knows it) the loss scale is at least ``SCALE_FLOOR * log(n_classes)``.

    >>> import pandas as pd
    >>> epochs = range(1, 21)  # training loss keeps falling while validation loss creeps up
    >>> h = pd.DataFrame({"epoch": epochs, "train_loss": [1 - 0.04 * e for e in epochs],
    ...                   "val_loss": [0.8 + 0.01 * e for e in epochs]})
    >>> diagnose(h).regime
    'steep-climb'
    """
    frame = _tidy(history)
    epochs = int(frame["epoch"].nunique())
    folds = int(frame["fold"].nunique())
    if epochs < MIN_EPOCHS:
        return _verdict("too-little-evidence", epochs=epochs, folds=folds,
                        evidence=[f"{epochs} epoch(s) with both losses; at least {MIN_EPOCHS} "
                                  "are needed to judge a trend"])
    if epochs > MAX_POINTS:
        frame = _coarsen(frame)
    scale = _scale(frame)
    if n_classes is not None and n_classes > 1:
        scale = max(scale, SCALE_FLOOR * float(np.log(n_classes)))
    if not scale > 0:
        return _verdict("too-little-evidence", epochs=epochs, folds=folds,
                        evidence=["every loss is zero: there is no curve to judge"])

    curve = frame.groupby("epoch")[["train_loss", "val_loss", "gap"]].median()
    first, last = float(curve.index.min()), float(curve.index.max())
    span = last - first
    window_start = first + span / 2
    later = frame[frame["epoch"] >= window_start]
    unit = span / scale

    def trend(column) -> Trend:
        t = pooled_sen_slope(later["epoch"], later[column], later["fold"])
        return Trend(t.slope * unit, t.low * unit, t.high * unit)

    gap_t, train_t, val_t = trend("gap"), trend("train_loss"), trend("val_loss")
    final_train = float(curve["train_loss"].iloc[-1]) / scale
    # Underfitting is read from the later half's median training loss, so one unstable last
    # epoch (an optimizer spike on a loss near zero) does not make a fitted model look unfit.
    later_train = float(curve.loc[curve.index >= window_start, "train_loss"].median()) / scale
    fallen = float(curve["train_loss"].iloc[0]) / scale - later_train
    smooth = curve[["train_loss", "val_loss"]].rolling(3, center=True, min_periods=1).median()
    smooth = smooth / scale
    near_best = smooth.index[smooth["val_loss"] <= smooth["val_loss"].min() + PLATEAU_TOL]
    plateau_end = near_best.max()
    train_at_best = float(smooth.loc[plateau_end, "train_loss"])
    fall_after_best = train_at_best - float(smooth["train_loss"].iloc[-1])
    final_gap = float(curve["gap"].iloc[-1]) / scale
    facts = fold_facts(frame)
    best_val_epoch = facts["best_epoch"]
    climb_start = _climb_start(frame, scale)
    signs = _label_signs(frame, scale)

    evidence = [
        f"{epochs} epochs, {folds} fold(s); loss scale (training loss at the first epoch): "
        f"{scale:.4g}; the trend is read from epoch {_epoch(window_start)} on",
        f"gap growth over the run: {gap_t.slope:+.3f} of the loss scale "
        f"({CONFIDENCE:.0%} interval {gap_t.low:+.3f} to {gap_t.high:+.3f}); steep from "
        f"{STEEP_GROWTH:+.2f}",
        f"training loss change: {train_t.slope:+.3f} (interval {train_t.low:+.3f} to "
        f"{train_t.high:+.3f}); validation loss change: {val_t.slope:+.3f} (interval "
        f"{val_t.low:+.3f} to {val_t.high:+.3f})",
        f"final training loss: {final_train:.2f} of the scale; final gap: {final_gap:+.2f}",
        f"training loss at the best validation epoch: {train_at_best:.2f} of the scale, "
        f"fallen by {fall_after_best:+.2f} since",
        f"best validation epoch: {best_val_epoch}"
        + (f"; the gap's trend turns upward at epoch {climb_start}" if climb_start is not None
           else "; the gap's trend has not turned upward"),
        *facts["lines"],
        *([_signs_line(signs)] if signs else []),
    ]
    common = dict(slope=gap_t.slope / span, slope_low=gap_t.low / span,
                  slope_high=gap_t.high / span, growth=gap_t.slope,
                  climb_start_epoch=climb_start, best_val_epoch=best_val_epoch, epochs=epochs,
                  scale=scale, folds=folds, train_change=train_t.slope, val_change=val_t.slope,
                  final_train=final_train, final_gap=final_gap, train_at_best=train_at_best,
                  train_fall_after_best=fall_after_best,
                  window_start=_epoch(window_start), last_epoch=_epoch(last),
                  best_val_epochs=sorted(facts["best_epochs"].values()), **signs)

    if (gap_t.slope >= STEEP_GROWTH and gap_t.low > 0 and val_t.high >= 0
            and train_at_best >= UNLEARNED):
        return _verdict("steep-climb", steep=True, steep_by="gap", evidence=evidence + [
            "rule: gap growth at or above the steep threshold with its interval above zero, "
            "validation loss not falling, and the training loss still high at the best "
            "validation epoch: part of the training labels is not explained by the rest"],
            **common)
    wrong_labels = _wrong_labels(signs, later_train)
    if wrong_labels:
        return _verdict("steep-climb", steep=True, steep_by=wrong_labels[0],
                        evidence=evidence + [wrong_labels[1]], **common)
    if later_train > UNDERFIT or fallen < FALLING:
        why = (f"the later half's median training loss, {later_train:.2f} of the scale, is "
               f"above {UNDERFIT}" if later_train > UNDERFIT else
               f"training loss fell by only {fallen:.2f} of the scale over the run")
        return _verdict("underfitting", evidence=evidence + [f"rule: {why}"], **common)
    if gap_t.low <= 0 < STEEP_GROWTH <= gap_t.high:
        return _verdict("too-little-evidence", evidence=evidence + [
            f"rule: the gap-growth interval ({gap_t.low:+.2f} to {gap_t.high:+.2f}) holds both a "
            "flat gap and a steep climb: the curves are too noisy to tell which"], **common)
    # Both with their whole interval past FALLING, so jitter alone does not make a converged
    # curve look over-parametrized.
    train_falling = train_t.high <= -FALLING
    gap_growing = gap_t.low >= FALLING
    if (train_falling or gap_growing) and val_t.slope >= -FALLING:
        return _verdict("over-parametrized", evidence=evidence + [
            "rule: training loss still falling, or the gap growing, while validation loss is "
            "flat or rising"], **common)
    return _verdict("converged", evidence=evidence + [
        "rule: the gap is not climbing steeply and training and validation loss move together"],
        **common)


def _verdict(regime, *, steep=False, evidence=(), **values) -> GapVerdict:
    defaults = dict(slope=None, slope_low=None, slope_high=None, growth=None,
                    climb_start_epoch=None, best_val_epoch=None, epochs=0, scale=None)
    defaults.update(values)
    return GapVerdict(regime=regime, steep=steep, advice=ADVICE[regime],
                      evidence=list(evidence), **defaults)


class GapMonitor:
    """Watch the gap in your own training loop: `update` each epoch, read `verdict` any time.

    >>> monitor = GapMonitor()
    >>> for epoch in range(1, 11):
    ...     verdict = monitor.update(epoch, train_loss=1 / epoch, val_loss=1 / epoch + 0.1)
    >>> monitor.verdict.regime
    'converged'
    """

    def __init__(self, *, fold: int = 1):
        self.fold = fold
        self.records: list[dict] = []
        self._verdict: GapVerdict | None = None

    def update(self, epoch, train_loss, val_loss, *, fold: int | None = None) -> GapVerdict:
        """Record one epoch's losses (of `fold`, default the monitor's) and return the verdict."""
        self.records.append({"fold": self.fold if fold is None else fold, "epoch": epoch,
                             "train_loss": float(train_loss), "val_loss": float(val_loss)})
        self._verdict = None
        return self.verdict

    @property
    def verdict(self) -> GapVerdict:
        """The diagnosis of every epoch recorded so far."""
        if self._verdict is None:
            self._verdict = diagnose(self.history) if self.records else _verdict(
                "too-little-evidence", evidence=["no epoch recorded yet"])
        return self._verdict

    @property
    def history(self):
        """The recorded epochs as a table: fold, epoch, train_loss, val_loss, gap."""
        return history_frame(self.records)
