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

The evidence also names the best-validation epoch (lowest validation loss, median over folds)
and the epoch where the gap started to climb (its last low point before the end, when it has
since grown by at least ``CLIMB_MIN * s``). The thresholds were tuned on the calibration benchmark
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
    advice: str
    evidence: list[str] = field(default_factory=list)
    folds: int = 0
    train_change: float | None = None  # train-loss slope * run length / scale
    val_change: float | None = None
    final_train: float | None = None  # last epoch's training loss / scale
    train_at_best: float | None = None  # training loss at the best-validation epoch / scale
    train_fall_after_best: float | None = None  # its fall from there to the end / scale
    final_gap: float | None = None  # last epoch's gap / scale
    window_start: float | None = None  # first epoch of the later half

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
    frame = frame[list(HISTORY_COLUMNS)].copy()
    for column in HISTORY_COLUMNS[1:]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["gap"] = frame["val_loss"] - frame["train_loss"]
    return frame.sort_values(["fold", "epoch"], kind="stable").reset_index(drop=True)


def _tidy(history):
    frame = history_frame(history).drop(columns="gap")
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
        ["fold", "epoch", "train_loss", "val_loss", "gap"]]


def _scale(frame) -> float:
    firsts = frame.loc[frame.groupby("fold")["epoch"].idxmin(), "train_loss"].abs()
    scale = float(firsts.median())
    if not scale > 0:
        # A first loss of exactly zero says nothing about units; fall back on the largest loss.
        scale = float(frame[["train_loss", "val_loss"]].abs().to_numpy().max())
    return scale


def _climb_start(gap, scale: float) -> float | None:
    """The gap's last low point before the end, if it has since grown by CLIMB_MIN * scale."""
    values = gap.rolling(3, center=True, min_periods=1).median().to_numpy()
    if len(values) < 3:
        return None
    low = int(np.argmin(values[:-1]))
    if (values[-1] - values[low]) / scale < CLIMB_MIN:
        return None
    return _epoch(gap.index[low])


def _epoch(value) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() else value


def diagnose(history) -> GapVerdict:
    """Diagnose a loss history: a DataFrame (or records) with epoch, train_loss, val_loss [, fold].

    Every fold's curve is used. The rule is documented in this module's docstring.

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
    best_val_epoch = _epoch(curve["val_loss"].idxmin())
    climb_start = _climb_start(curve["gap"], scale)

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
        + (f"; the gap started to climb at epoch {climb_start}" if climb_start is not None
           else "; the gap has not climbed from its low"),
    ]
    common = dict(slope=gap_t.slope / span, slope_low=gap_t.low / span,
                  slope_high=gap_t.high / span, growth=gap_t.slope,
                  climb_start_epoch=climb_start, best_val_epoch=best_val_epoch, epochs=epochs,
                  scale=scale, folds=folds, train_change=train_t.slope, val_change=val_t.slope,
                  final_train=final_train, final_gap=final_gap, train_at_best=train_at_best,
                  train_fall_after_best=fall_after_best,
                  window_start=_epoch(window_start))

    if (gap_t.slope >= STEEP_GROWTH and gap_t.low > 0 and val_t.high >= 0
            and train_at_best >= UNLEARNED):
        return _verdict("steep-climb", steep=True, evidence=evidence + [
            "rule: gap growth at or above the steep threshold with its interval above zero, "
            "validation loss not falling, and the training loss still high at the best "
            "validation epoch: part of the training labels is not explained by the rest"],
            **common)
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
