"""Cross-validation that records train and validation loss per epoch for every fold."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from .settings import TrainingSettings

# Exact neighbours cost O(n^2): above this many samples (50,000 training rows at 5 folds) the
# neighbour members would dominate the scan's time. The rule reads the whole dataset's size, so
# every fold has the same members.
MAX_KNN_SAMPLES = 62_500
MAX_MEMBER_TRAIN = 20_000
MEMMAP_FROM = 50_000_000  # probabilities per member (200 MB as float32)


@dataclass(frozen=True, kw_only=True)
class ModelSettings(TrainingSettings):
    """Everything about the model that changes its probabilities (part of the cache key): the
    scan's training settings (declared in labelaudit.settings) resolved for one dataset.

    >>> from labelaudit.settings import ScanSettings
    >>> model = ModelSettings.of(ScanSettings(lr=0.01), kind="features", n_classes=3)
    >>> model.lr, model.batch_size, model.shift
    (0.01, 64, 0)
    """

    kind: str  # "images" or "features"
    n_classes: int
    batch_size: int = 64  # resolved: the scan's None is auto_batch_size of the data
    shift: int = 0  # images: random translation by up to this many pixels while training

    @classmethod
    def of(cls, settings: TrainingSettings, **resolved) -> ModelSettings:
        """`settings`' training fields, with `resolved` adding or replacing what the data
        decides (kind, n_classes, batch_size, shift)."""
        copied = {f.name: getattr(settings, f.name) for f in fields(TrainingSettings)}
        if copied["batch_size"] is None:
            del copied["batch_size"]
        return cls(**{**copied, **resolved})


@dataclass(frozen=True)
class FoldResult:
    fold: int  # 1-based
    test_index: np.ndarray
    pred_probs: np.ndarray  # float32 (len(test_index), n_classes), from the best-validation epoch
    history: list  # dicts: epoch, train_loss, val_loss
    best_epoch: int
    member_probs: dict = field(default_factory=dict)  # name -> held-out probs of other members
    embedding_probs: dict = field(default_factory=dict)  # name -> neighbours in learned space
    train_index: np.ndarray | None = None  # with `trajectory`
    trajectory: np.ndarray | None = None  # float32 (len(train_index), n_classes): see
    # training_dynamics; None for fold 0 and for text


def fold_splits(y, *, cv: int = 5, random_state: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, shuffled, seeded folds; classes smaller than `cv` are spread as far as they go.

    >>> [len(test) for _, test in fold_splits(np.repeat([0, 1], 10), cv=5)]
    [4, 4, 4, 4, 4]
    """
    import warnings

    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    with warnings.catch_warnings():  # small classes are reported by the scan itself
        warnings.simplefilter("ignore", UserWarning)
        return [(tr, te) for tr, te in splitter.split(np.zeros(len(y)), y)]


def monitor_split(train_index, test_index, max_samples: int, *, random_state: int = 0):
    """A seeded subsample of one fold's split, at most `max_samples` in all, in its proportions.

    On big data the gap is watched on a subsample: a network that cannot memorise tens of
    thousands of wrong labels within its epochs shows no climbing gap (10% noise in 100,000
    rows reads `underfitting`), where the same data at 12,500 samples climbs steeply.

    >>> train, test = monitor_split(np.arange(80), np.arange(80, 100), 10)
    >>> len(train), len(test), set(test) <= set(range(80, 100))
    (8, 2, True)
    """
    rng = np.random.default_rng(random_state)
    n_train = round(max_samples * len(train_index) / (len(train_index) + len(test_index)))
    n_train = min(len(train_index), max(1, n_train))
    n_test = min(len(test_index), max(1, max_samples - n_train))
    return (np.sort(rng.choice(train_index, n_train, replace=False)),
            np.sort(rng.choice(test_index, n_test, replace=False)))


def train_fold(X, y, train_index, test_index, *, fold: int, settings: ModelSettings,
               random_state: int = 0, on_epoch=None, n_threads: int | None = None,
               neighbours: bool = False, dynamics: bool = False,
               monitor: bool | None = None) -> FoldResult:
    """Train one fold's model; return its held-out probabilities and its loss history.

    With `neighbours`, also the held-out probabilities of nearest neighbours in the trained
    network's own feature space (see `embedding_neighbours`); with `dynamics`, its training
    samples' probabilities averaged over the epochs (see `training_dynamics`). `monitor`
    (default: folds 0 and 1) trains with the monitor's patience, long enough past the best epoch
    for the gap verdict.
    """
    import torch

    # These networks are small: one thread per fold trains them fastest (two threads were 2 to
    # 20 times slower whenever another process shared the cores), and the same thread count
    # everywhere makes serial, joblib and Dask runs give identical numbers.
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads or 1)
    try:
        return _train_fold(X, y, train_index, test_index, fold=fold, settings=settings,
                           random_state=random_state, on_epoch=on_epoch, neighbours=neighbours,
                           dynamics=dynamics,
                           monitor=fold in (0, 1) if monitor is None else monitor)
    finally:
        torch.set_num_threads(previous)


def _train_fold(X, y, train_index, test_index, *, fold, settings, random_state,
                on_epoch, neighbours, dynamics, monitor) -> FoldResult:
    from .models import TorchClassifier

    model = TorchClassifier(
        kind=settings.kind, n_classes=settings.n_classes, epochs=settings.epochs,
        batch_size=settings.batch_size, lr=settings.lr, hidden=settings.hidden,
        device=settings.device, random_state=random_state + fold,
        # The monitor (fold 1, or fold 0 when it is separate: a subsample of big data, see
        # `monitor_split`, or unshifted images, see scan._audit) trains on past its best
        # validation epoch, long enough for the gap verdict to see a climb; the audit's folds
        # only need their best epoch's probabilities.
        patience=settings.monitor_patience if monitor else settings.patience,
        min_epochs=settings.monitor_min_epochs if monitor else 0, shift=settings.shift,
    )
    model.fit(X[train_index], y[train_index], X_val=X[test_index], y_val=y[test_index],
              on_epoch=on_epoch, trajectory=dynamics and fold > 0)
    bad = [h["epoch"] for h in model.history_ if not np.isfinite(h["train_loss"])
           or not np.isfinite(h["val_loss"])]
    if bad or model.val_pred_probs_ is None:  # NaN probabilities must never reach cleanlab
        from .errors import UsageError

        raise UsageError(f"fold {fold} failed: training diverged (the loss is not a finite "
                         f"number from epoch {bad[0] if bad else 1}); lower --lr (now "
                         f"{settings.lr}); no report was written")
    return FoldResult(fold=fold, test_index=np.asarray(test_index),
                      pred_probs=model.val_pred_probs_.astype(np.float32),
                      history=model.history_, best_epoch=int(model.best_epoch_),
                      # Fold 0, the separate monitor, is never scored: no neighbours for it.
                      embedding_probs=embedding_neighbours(model, X, y, train_index, test_index)
                      if neighbours and fold > 0 and len(y) <= MAX_KNN_SAMPLES else {},
                      train_index=None if model.trajectory_ is None else np.asarray(train_index),
                      trajectory=model.trajectory_)


def embedding_neighbours(model, X, y, train_index, test_index) -> dict:
    """{"knn_embedding": held-out probabilities of neighbours in the network's feature space}.

    The features are the trained network's penultimate layer (its best-validation weights);
    each held-out sample gets the distance-weighted labels of its 10 nearest training samples
    there. Neighbours in a learned space join the raw-feature neighbours and the network as an
    ensemble member. On the quality benchmark's grid (images and tables, 30 settings, one seed)
    adding it raised mean F1 from 0.794 to 0.800 and AUPRC from 0.863 to 0.868, most on MNIST
    (F1 +1.5, AUPRC +1.6 points); on 20 Newsgroups it lowered both, so text goes without.
    """
    from sklearn.neighbors import KNeighborsClassifier

    k = max(1, min(10, len(train_index) - 1))
    knn = KNeighborsClassifier(k, weights="distance", algorithm="brute")
    knn.fit(model.transform(X, train_index), y[train_index])
    probs = np.zeros((len(test_index), model.n_classes_), dtype=np.float32)
    probs[:, knn.classes_] = knn.predict_proba(model.transform(X, test_index))
    return {"knn_embedding": probs}


def sklearn_members(kind: str, n_train: int, *, n_samples: int, random_state: int = 0) -> dict:
    """The scikit-learn models that join the torch one: neighbours and a linear model, and for
    text naive Bayes.

    They see the same inputs as the torch model (pixels, standardized columns, TF-IDF), and
    their errors differ from a network's, so averaging their probabilities sharpens the ranking.
    Complement naive Bayes (Rennie et al. 2003, scikit-learn's defaults) is the classic model
    for word weights; on 20 Newsgroups its out-of-fold probabilities were the most accurate of
    the text members, where the network's were the least (which the scan leaves out on text).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    k = max(1, min(10, n_train - 1))
    members = {"logreg": LogisticRegression(C=10.0 if kind == "text" else 0.1, max_iter=1000)}
    if n_samples <= MAX_KNN_SAMPLES:
        members["knn"] = (
            KNeighborsClassifier(k, weights="distance", metric="cosine", algorithm="brute")
            if kind == "text" else KNeighborsClassifier(k, weights="distance"))
    if kind == "text":  # TF-IDF weights are never negative, as naive Bayes needs
        from sklearn.naive_bayes import ComplementNB

        members["naive_bayes"] = ComplementNB()
    return members


def fit_members(X, y, train_index, test_index, *, data_kind: str, n_classes: int,
                random_state: int = 0) -> dict:
    """Held-out probabilities of each scikit-learn member for one fold.

    Above MAX_MEMBER_TRAIN training rows the members learn from a seeded random subset: a
    linear model and neighbours gain little from more rows, and their cost would dominate.
    """
    n_samples = X.shape[0]
    if data_kind == "images":  # flat pixels in [0, 1]
        X = X.reshape(X.shape[0], -1)
    if len(train_index) > MAX_MEMBER_TRAIN:
        rng = np.random.default_rng(random_state)
        train_index = np.sort(rng.choice(train_index, MAX_MEMBER_TRAIN, replace=False))
    probs = {}
    for name, estimator in sklearn_members(data_kind, len(train_index), n_samples=n_samples,
                                           random_state=random_state).items():
        Xtr, Xte = X[train_index], X[test_index]
        if data_kind == "images":
            Xtr, Xte = Xtr.astype(np.float32) / 255, Xte.astype(np.float32) / 255
        estimator.fit(Xtr, y[train_index])
        full = np.zeros((len(test_index), n_classes), dtype=np.float32)
        full[:, estimator.classes_] = estimator.predict_proba(Xte)
        probs[name] = full
    return probs


def run_fold(X, y, train_index, test_index, *, fold: int, settings: ModelSettings,
             random_state: int, data_kind: str, want_model: bool = True,
             want_members: bool = True, n_threads: int | None = None, on_epoch=None,
             monitor: bool | None = None):
    """One unit of work for any backend: (fold, FoldResult or None, member probs or None)."""
    # Neighbours in the network's feature space and the training dynamics helped on images and
    # tables, not on TF-IDF, which the network memorises within an epoch or two.
    result = train_fold(X, y, train_index, test_index, fold=fold, settings=settings,
                        random_state=random_state, on_epoch=on_epoch, n_threads=n_threads,
                        neighbours=data_kind != "text", dynamics=data_kind != "text",
                        monitor=monitor) if want_model else None
    members = fit_members(X, y, train_index, test_index, data_kind=data_kind,
                          n_classes=settings.n_classes,
                          random_state=random_state + fold) if want_members else None
    return fold, result, members


def _probs_array(n_samples: int, n_classes: int, fill: float = np.nan) -> np.ndarray:
    """A float32 (n_samples, n_classes) array of `fill`, backed by a temporary file when large."""
    if n_samples * n_classes < MEMMAP_FROM:
        return np.full((n_samples, n_classes), fill, dtype=np.float32)
    import tempfile

    # The file is deleted when the array is: the OS pages it out to disk, not to swap.
    array = np.memmap(tempfile.TemporaryFile(prefix="labelaudit-"), dtype=np.float32,
                      mode="w+", shape=(n_samples, n_classes))
    array[:] = fill
    return array


def out_of_fold(results: list[FoldResult], n_samples: int, n_classes: int) -> dict:
    """Assemble every fold's held-out probabilities, per member, into (n_samples, n_classes).

    Above MEMMAP_FROM probabilities per member the arrays are memory-mapped temporary files.
    """
    names = ["model", *sorted(results[0].member_probs), *sorted(results[0].embedding_probs)] \
        if results else ["model"]
    out = {name: _probs_array(n_samples, n_classes) for name in names}
    for r in results:
        out["model"][r.test_index] = r.pred_probs
        for name, probs in {**r.member_probs, **r.embedding_probs}.items():
            out[name][r.test_index] = probs
    if any(np.isnan(p).any() for p in out.values()):
        raise RuntimeError("some samples have no out-of-fold probabilities; a fold is missing")
    return out


def training_dynamics(results: list[FoldResult], n_samples: int, n_classes: int):
    """Each sample's probabilities while it was trained on, averaged over its training folds.

    Every audit fold records, for each of its training samples, the softmax of the training
    passes averaged over the epochs it trained (`TorchClassifier.fit(trajectory=True)`); a
    sample is in the training split of all folds but its own. A wrongly labelled sample is
    learned late, by memorising, so its label holds a low probability on average over the
    epochs even where the network ends up fitting it (the idea of the area under the margin,
    Pleiss et al. 2020, and of Dataset Cartography's confidence, Swayamdipta et al. 2020).
    These are in-sample probabilities: they join the ranking, never the vote or the suggested
    label. None when the folds recorded none (text).

    >>> def fold(k, trained_on, probs):
    ...     return FoldResult(fold=k, test_index=np.array([1 - trained_on]), pred_probs=None,
    ...                       history=[], best_epoch=1, train_index=np.array([trained_on]),
    ...                       trajectory=np.array([probs], dtype=np.float32))
    >>> training_dynamics([fold(1, 0, [.75, .25]), fold(2, 1, [.5, .5])], 2, 2)
    array([[0.75, 0.25],
           [0.5 , 0.5 ]], dtype=float32)
    """
    if not results or any(r.trajectory is None for r in results):
        return None
    total = _probs_array(n_samples, n_classes, fill=0.0)
    count = np.zeros(n_samples, dtype=np.float32)
    for r in results:
        total[r.train_index] += r.trajectory
        count[r.train_index] += 1
    if not count.all():
        raise RuntimeError("some samples were never trained on; a fold is missing")
    total /= count[:, None]
    return total


def history_frame(results: list[FoldResult]):
    """One table: fold, epoch, train_loss, val_loss, gap."""
    import pandas as pd

    rows = [{"fold": r.fold, **h} for r in results for h in r.history]
    frame = pd.DataFrame(rows, columns=["fold", "epoch", "train_loss", "val_loss"])
    frame["gap"] = frame["val_loss"] - frame["train_loss"]
    return frame.sort_values(["fold", "epoch"], kind="stable").reset_index(drop=True)
