"""Cross-validation that records train and validation loss per epoch for every fold."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from .settings import TrainingSettings

# Exact neighbours cost O(n^2), so above this many samples the neighbour members do not run;
# the rule reads the whole dataset's size, so every fold has the same members.
MAX_KNN_SAMPLES = 62_500
NEIGHBOURS = ("knn", "knn_embedding", "embeddings_knn")
MAX_MEMBER_TRAIN = 20_000
MEMMAP_FROM = 50_000_000  # probabilities per member (200 MB as float32)

RUN, VOTE, RANK = "run", "vote", "rank"
_VOTES = frozenset({RUN, VOTE, RANK})
# The ensemble's members for each kind of data, in the order of their evidence columns
# (quality_<name>), with their roles: RUN trains it in every audit fold; VOTE counts its own
# confident learning in is_label_issue and pools its probabilities into suggested_label; RANK
# pools its probabilities into label_quality. The first member is the network, whose loss
# curves the gap rule reads. The training dynamics are in-sample probabilities, so they rank
# and never vote; on text the network memorises TF-IDF within an epoch or two, so it only runs
# (for the gap) and naive Bayes votes in its place.
ENSEMBLE = {
    "images": {"cnn": _VOTES, "knn": _VOTES, "logreg": _VOTES, "knn_embedding": _VOTES,
               "dynamics": frozenset({RUN, RANK})},
    "tabular": {"mlp": _VOTES, "knn": _VOTES, "logreg": _VOTES, "knn_embedding": _VOTES,
                "dynamics": frozenset({RUN, RANK})},
    "text": {"mlp": frozenset({RUN}), "knn": _VOTES, "logreg": _VOTES, "naive_bayes": _VOTES},
}
# With vectors of the user's (--embeddings, --encoder), these members run on them in every
# audit fold, after the kind's own; they vote and rank as far as audit.gate_members lets them.
EMBEDDED = {"embeddings_knn": _VOTES, "embeddings_logreg": _VOTES}


def network_of(kind: str) -> str:
    """The name of the kind's network, its first member.

    >>> network_of("images"), network_of("text")
    ('cnn', 'mlp')
    """
    return next(iter(ENSEMBLE[kind]))


def members_with(role: str, kind: str, n_samples: int, *, embedded: bool = False) -> list[str]:
    """The kind's members with `role`, in ENSEMBLE's order, then with `embedded` the EMBEDDED
    ones; neighbours up to MAX_KNN_SAMPLES.

    >>> members_with(VOTE, "text", 100)
    ['knn', 'logreg', 'naive_bayes']
    >>> members_with(RANK, "tabular", 100_000, embedded=True)
    ['mlp', 'logreg', 'dynamics', 'embeddings_logreg']
    """
    roles = {**ENSEMBLE[kind], **(EMBEDDED if embedded else {})}
    return [name for name, roles in roles.items()
            if role in roles and (name not in NEIGHBOURS or n_samples <= MAX_KNN_SAMPLES)]


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
    thousands of wrong labels within its epochs shows no climbing gap (docs/gap-rule.md).

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

    # One thread per fold: these small networks train fastest so when processes share the cores,
    # and the same thread count everywhere makes serial, joblib and Dask runs give equal numbers.
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
        # The monitor trains on past its best epoch, long enough for the gap verdict to see a
        # climb; the audit's folds only need their best epoch's probabilities.
        patience=settings.monitor_patience if monitor else settings.patience,
        min_epochs=settings.monitor_min_epochs if monitor else 0, shift=settings.shift,
        track_labels=monitor,
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
    held_out = model.val_pred_probs_
    if settings.kind == "images" and settings.shift:
        # A network trained on shifted images reads each held-out image in a few positions.
        held_out = model.shifted_proba(X, np.asarray(test_index))
    return FoldResult(fold=fold, test_index=np.asarray(test_index),
                      pred_probs=held_out.astype(np.float32),
                      history=model.history_, best_epoch=int(model.best_epoch_),
                      # Fold 0, the separate monitor, is never scored: no neighbours for it.
                      embedding_probs=embedding_neighbours(model, X, y, train_index, test_index,
                                                     random_state=random_state + fold)
                      if neighbours and fold > 0 else {},
                      train_index=None if model.trajectory_ is None else np.asarray(train_index),
                      trajectory=model.trajectory_)


def embedding_neighbours(model, X, y, train_index, test_index, *, random_state=0) -> dict:
    """{"knn_embedding": held-out probabilities of neighbours in the network's feature space}.

    The features are the trained network's penultimate layer (its best-validation weights);
    each held-out sample gets the distance-weighted labels of its nearest training samples
    there, whose errors differ from both the network's and the raw-feature neighbours'.
    """
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbours(len(train_index)), weights="distance",
                               algorithm="brute")
    train_index = tie_order(train_index, random_state)
    knn.fit(model.transform(X, train_index), y[train_index])
    probs = np.zeros((len(test_index), model.n_classes_), dtype=np.float32)
    probs[:, knn.classes_] = knn.predict_proba(model.transform(X, test_index))
    return {"knn_embedding": probs}


def tie_order(train_index, random_state) -> np.ndarray:
    """The training rows in a seeded random order, for the neighbour members.

    Among samples at the same distance (exact duplicates) a neighbour search returns the first
    rows it holds, and the rows come sorted by id, which in an image folder is by class: the
    neighbours of a duplicated image would be the copies in the lowest class folders, not a
    fair sample of its copies' labels.

    >>> sorted(tie_order(np.arange(5), 0)) == list(range(5))
    True
    """
    return np.random.default_rng(random_state).permutation(np.asarray(train_index))


def n_neighbours(n_train: int) -> int:
    """The neighbour members' k: 10, or fewer when fewer samples train.

    >>> n_neighbours(1000), n_neighbours(4)
    (10, 3)
    """
    return max(1, min(10, n_train - 1))


def _knn(kind: str, n_train: int):
    from sklearn.neighbors import KNeighborsClassifier

    if kind == "text":  # TF-IDF vectors compare by angle
        return KNeighborsClassifier(n_neighbours(n_train), weights="distance", metric="cosine",
                                    algorithm="brute")
    return KNeighborsClassifier(n_neighbours(n_train), weights="distance")


def _logreg(kind: str, n_train: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=10.0 if kind == "text" else 0.1, max_iter=1000)


def _naive_bayes(kind: str, n_train: int):
    from sklearn.naive_bayes import ComplementNB  # TF-IDF weights are never negative, as it needs

    return ComplementNB()


# The members that scikit-learn fits, by name: each maker takes (kind, n_train).
SKLEARN_MEMBERS = {"knn": _knn, "logreg": _logreg, "naive_bayes": _naive_bayes}
# The linear model's inverse penalty on unit-length vectors: one value that held up from clean
# to 40% flipped labels on sentence embeddings, pixels and low-dimensional projections alike.
EMBEDDINGS_C = 2.0


def _embeddings_knn(n_train: int):
    from sklearn.neighbors import KNeighborsClassifier

    # Text and image encoders are trained so that the angle between vectors carries meaning.
    return KNeighborsClassifier(n_neighbours(n_train), weights="distance", metric="cosine",
                                algorithm="brute")


def _embeddings_logreg(n_train: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    # Unit length, as the neighbours compare them: an encoder's vectors vary in norm for
    # reasons other than their class.
    return make_pipeline(Normalizer(), LogisticRegression(C=EMBEDDINGS_C, max_iter=1000))


# The members that learn from the user's vectors (EMBEDDED), by name: each maker takes n_train.
EMBEDDING_MEMBERS = {"embeddings_knn": _embeddings_knn, "embeddings_logreg": _embeddings_logreg}


def sklearn_members(kind: str, n_train: int, *, n_samples: int) -> dict:
    """The kind's scikit-learn members that run (ENSEMBLE), unfitted, by name.

    They see the same inputs as the network (pixels, standardized columns, TF-IDF) and err
    differently, so pooling their probabilities sharpens the ranking; complement naive Bayes
    (Rennie et al. 2003) is the classic model for word weights.

    >>> sorted(sklearn_members("text", 100, n_samples=125))
    ['knn', 'logreg', 'naive_bayes']
    """
    return {name: SKLEARN_MEMBERS[name](kind, n_train)
            for name in members_with(RUN, kind, n_samples) if name in SKLEARN_MEMBERS}


def fit_members(X, y, train_index, test_index, *, data_kind: str, n_classes: int,
                random_state: int = 0, embeddings=None, raw: bool = True) -> dict:
    """Held-out probabilities of each scikit-learn member for one fold: the kind's own on `X`
    (unless not `raw`) and, given `embeddings` (n_samples, d), EMBEDDING_MEMBERS on those.

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
    shuffled = tie_order(train_index, random_state)
    for name, estimator in (sklearn_members(data_kind, len(train_index), n_samples=n_samples)
                            if raw else {}).items():
        rows = shuffled if name in NEIGHBOURS else train_index
        Xtr, Xte = X[rows], X[test_index]
        if data_kind == "images":
            Xtr, Xte = Xtr.astype(np.float32) / 255, Xte.astype(np.float32) / 255
        probs[name] = _held_out(estimator, Xtr, y[rows], Xte, n_classes)
    if embeddings is not None:
        for name in members_with(RUN, data_kind, n_samples, embedded=True):
            if name in EMBEDDING_MEMBERS:
                rows = shuffled if name in NEIGHBOURS else train_index
                probs[name] = _held_out(EMBEDDING_MEMBERS[name](len(train_index)),
                                        embeddings[rows], y[rows], embeddings[test_index],
                                        n_classes)
    return probs


def _held_out(estimator, X_train, y_train, X_test, n_classes: int) -> np.ndarray:
    """`estimator` fitted on the training rows: its float32 probabilities for the test rows,
    with a column for every class (0 for classes its training rows lacked)."""
    estimator.fit(X_train, y_train)
    full = np.zeros((X_test.shape[0], n_classes), dtype=np.float32)
    full[:, estimator.classes_] = estimator.predict_proba(X_test)
    return full


def run_fold(X, y, train_index, test_index, *, fold: int, settings: ModelSettings,
             random_state: int, data_kind: str, want_model: bool = True,
             want_members: bool = True, want_embeddings: bool = False, embeddings=None,
             n_threads: int | None = None, on_epoch=None, monitor: bool | None = None):
    """One unit of work for any backend: (fold, FoldResult or None, member probs or None).

    The network trains with the members that ENSEMBLE runs in it for `data_kind`
    (knn_embedding, dynamics); `fit_members` fits the scikit-learn ones, with
    `want_embeddings` those that learn from `embeddings`.
    """
    runs = members_with(RUN, data_kind, len(y))
    result = train_fold(X, y, train_index, test_index, fold=fold, settings=settings,
                        random_state=random_state, on_epoch=on_epoch, n_threads=n_threads,
                        neighbours="knn_embedding" in runs, dynamics="dynamics" in runs,
                        monitor=monitor) if want_model else None
    embedded = want_embeddings and embeddings is not None
    members = fit_members(X, y, train_index, test_index, data_kind=data_kind,
                          n_classes=settings.n_classes, random_state=random_state + fold,
                          embeddings=embeddings if embedded else None, raw=want_members) \
        if want_members or embedded else None
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


def out_of_fold(results: list[FoldResult], n_samples: int, n_classes: int, *,
                network: str = "model") -> dict:
    """Assemble every fold's held-out probabilities, per member, into (n_samples, n_classes).

    The network's are named `network`. Above MEMMAP_FROM probabilities per member the arrays
    are memory-mapped temporary files.
    """
    names = [network, *sorted(results[0].member_probs), *sorted(results[0].embedding_probs)] \
        if results else [network]
    out = {name: _probs_array(n_samples, n_classes) for name in names}
    for r in results:
        out[network][r.test_index] = r.pred_probs
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
    None when the folds recorded none (where ENSEMBLE does not run them).

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
    """The folds' loss histories as one table: fold, epoch, train_loss, val_loss, gap."""
    from .gap import history_frame as loss_history

    return loss_history([{"fold": r.fold, **h} for r in results for h in r.history])
