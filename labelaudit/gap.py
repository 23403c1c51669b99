"""Diagnose the generalization gap (validation loss minus training loss) over epochs.

The rule, in short: take the later half of the epochs, estimate the gap's trend there with the
Theil-Sen estimator (robust to noisy epochs), and express it relative to the loss scale (the
training loss after the first epoch, i.e. the loss of a barely trained model), so the verdict does
not depend on the loss's units or the number of classes. The gap climbs steeply when its growth
over the run is large against that scale and the lower bound of the slope's confidence interval is
above zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

MIN_EPOCHS = 6
# Relative gap growth over the run (slope * epochs / scale) above which the climb is steep.
STEEP_GROWTH = 0.15
# Relative train-loss fall over the later epochs that still counts as "falling".
FALLING = 0.05
# Relative val-loss change over the later epochs that counts as "flat".
FLAT = 0.05
# Final train loss above this fraction of the scale means the model did not fit.
UNDERFIT = 0.6

ADVICE = {
    "converged": "The gap has stopped growing: the fit is in a decent place. If the metric is "
                 "not good enough, improve the model or the features.",
    "over-parametrized": "Training loss is still falling while validation loss is flat: the model "
                         "has more capacity than the data supports. Simplify or regularize it "
                         "(fewer layers or units, dropout, L1/L2, batch normalization).",
    "steep-climb": "The gap is climbing steeply: suspect the dataset, above all wrongly assigned "
                   "labels. Inspect the flagged samples by hand.",
    "underfitting": "Training loss is high or not falling: give the model more capacity, train "
                    "longer, or improve the features or the learning rate.",
    "too-little-evidence": "Too few epochs or too noisy curves to say; train for more epochs "
                           "before drawing conclusions.",
}


@dataclass(frozen=True)
class GapVerdict:
    """The diagnosis of one set of loss curves, with its evidence and advice."""

    regime: str
    steep: bool
    slope: float | None  # gap growth per epoch, relative to the loss scale
    slope_low: float | None  # 90% confidence interval of that slope
    slope_high: float | None
    growth: float | None  # slope * epochs: relative gap growth over the run
    climb_start_epoch: int | None
    best_val_epoch: int | None
    epochs: int
    scale: float | None
    advice: str
    evidence: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _theil_sen(x, y):
    from scipy.stats import theilslopes

    if len(np.unique(x)) < 2:
        return 0.0, 0.0, 0.0
    slope, _, low, high = theilslopes(y, x, alpha=0.90)
    return float(slope), float(low), float(high)


def diagnose(history) -> GapVerdict:
    """Diagnose a loss history: a DataFrame (or records) with epoch, train_loss, val_loss [, fold].

    >>> import pandas as pd
    >>> h = pd.DataFrame({"epoch": range(1, 21), "train_loss": [1 / e for e in range(1, 21)],
    ...                   "val_loss": [1 / e + 0.05 * e for e in range(1, 21)]})
    >>> diagnose(h).regime
    'steep-climb'
    """
    import pandas as pd

    frame = pd.DataFrame(history)
    if "fold" not in frame:
        frame["fold"] = 1
    frame = frame.dropna(subset=["train_loss", "val_loss"]).sort_values(["fold", "epoch"])
    epochs = int(frame["epoch"].nunique()) if len(frame) else 0
    if epochs < MIN_EPOCHS:
        return _verdict("too-little-evidence", epochs=epochs,
                        evidence=[f"{epochs} epoch(s) with both losses; at least {MIN_EPOCHS} "
                                  "are needed"])

    by_epoch = frame.groupby("epoch")[["train_loss", "val_loss"]].mean()
    gap = by_epoch["val_loss"] - by_epoch["train_loss"]
    first = frame[frame["epoch"] == frame["epoch"].min()]
    scale = float(max(first["train_loss"].median(), 1e-8))
    last_epoch = float(by_epoch.index.max())
    later = frame[frame["epoch"] > frame["epoch"].min() + (last_epoch - frame["epoch"].min()) / 2]
    x = later["epoch"].to_numpy(float)
    span = x.max() - x.min()
    g_slope, g_low, g_high = (v / scale for v in _theil_sen(x, (later["val_loss"]
                                                                - later["train_loss"]).to_numpy()))
    t_slope = _theil_sen(x, later["train_loss"].to_numpy())[0] / scale
    v_slope = _theil_sen(x, later["val_loss"].to_numpy())[0] / scale
    growth = g_slope * epochs
    best_val_epoch = int(by_epoch["val_loss"].idxmin())
    final_train = float(by_epoch["train_loss"].iloc[-1]) / scale
    climb_start = _climb_start(gap)
    evidence = [
        f"loss scale (train loss after the first epoch): {scale:.3g}",
        f"gap slope over the later epochs: {g_slope:+.4f} of the scale per epoch "
        f"(90% CI {g_low:+.4f} to {g_high:+.4f}); growth over {epochs} epochs: {growth:+.2f}",
        f"train loss slope: {t_slope:+.4f}/epoch, validation loss slope: {v_slope:+.4f}/epoch",
        f"best validation epoch: {best_val_epoch}",
    ]
    common = dict(slope=g_slope, slope_low=g_low, slope_high=g_high, growth=growth,
                  climb_start_epoch=climb_start, best_val_epoch=best_val_epoch, epochs=epochs,
                  scale=scale, evidence=evidence)
    if final_train > UNDERFIT and t_slope * span > -FALLING:
        return _verdict("underfitting", **common)
    if growth > STEEP_GROWTH and g_low > 0:
        return _verdict("steep-climb", steep=True, **common)
    if t_slope * span < -FALLING * final_train and abs(v_slope * span) < FLAT:
        return _verdict("over-parametrized", **common)
    return _verdict("converged", **common)


def _climb_start(gap) -> int | None:
    """First epoch after which the gap stays above its minimum plus a tenth of its range."""
    values = gap.to_numpy()
    low, high = values.min(), values.max()
    if high - low <= 0:
        return None
    above = values > low + 0.1 * (high - low)
    for i in range(len(values)):
        if above[i:].all():
            return int(gap.index[i])
    return None


def _verdict(regime, *, steep=False, slope=None, slope_low=None, slope_high=None, growth=None,
             climb_start_epoch=None, best_val_epoch=None, epochs=0, scale=None, evidence=()):
    return GapVerdict(regime=regime, steep=steep, slope=slope, slope_low=slope_low,
                      slope_high=slope_high, growth=growth, climb_start_epoch=climb_start_epoch,
                      best_val_epoch=best_val_epoch, epochs=epochs, scale=scale,
                      advice=ADVICE[regime], evidence=list(evidence))


class GapMonitor:
    """Watch the gap in your own training loop.

    >>> monitor = GapMonitor()
    >>> for epoch in range(1, 11):
    ...     monitor.update(epoch, train_loss=1 / epoch, val_loss=1 / epoch + 0.1)
    >>> monitor.verdict.regime
    'converged'
    """

    def __init__(self, *, fold: int = 1):
        self.fold = fold
        self.records: list[dict] = []

    def update(self, epoch, train_loss, val_loss, *, fold: int | None = None) -> GapVerdict:
        self.records.append({"fold": self.fold if fold is None else fold, "epoch": epoch,
                             "train_loss": float(train_loss), "val_loss": float(val_loss)})
        return self.verdict

    @property
    def verdict(self) -> GapVerdict:
        return diagnose(self.records) if self.records else _verdict("too-little-evidence")

    @property
    def history(self):
        import pandas as pd

        frame = pd.DataFrame(self.records, columns=["fold", "epoch", "train_loss", "val_loss"])
        frame["gap"] = frame["val_loss"] - frame["train_loss"]
        return frame
