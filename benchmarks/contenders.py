"""The alternatives labelaudit is measured against (issue 9), each as a user would write it.

Every contender takes one `Bench` (the data as a user holds it: images, a feature table or
texts) and the noisy labels, and returns a `Found`: cleanlab's `is_label_issue`, a
`label_quality` ranking (low = likely wrong) and the estimated noise rate, 1 - trace of
cleanlab's estimated joint of given and true labels, the same estimate labelaudit reports.

1. `recipe`: scikit-learn LogisticRegression on standardized features (TF-IDF for text), 5-fold
   `cross_val_predict`, then cleanlab `find_label_issues` / `get_label_quality_scores`.
2. `datalab_knn`: cleanlab Datalab's label check given only features (its kNN): raw pixels,
   standardized columns, or TF-IDF reduced with TruncatedSVD.
3. `expert`: an expert's afternoon: a two-conv-layer CNN for images, an MLP with two hidden
   layers for tables, TF-IDF + LogisticRegression for text; 5-fold, each fold's probabilities from
   its best validation epoch, then cleanlab.
4. `labelaudit_scan`: `labelaudit.scan.scan(path, ScanSettings(audit="always"))` with default
   settings on the same noisy data written to a temporary folder or table.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

CV = 5


@dataclass(frozen=True)
class Bench:
    """One benchmark dataset with its true labels.

    ``inputs``: images -> uint8 (n, channels, size, size); tabular -> DataFrame of feature
    columns (numbers and categories); text -> array of str.
    """

    name: str
    kind: str  # images, tabular, text
    inputs: object
    y: np.ndarray
    classes: tuple[str, ...]

    @property
    def n_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Found:
    is_label_issue: np.ndarray
    label_quality: np.ndarray
    estimated_noise_rate: float
    extra: dict = field(default_factory=dict)  # per-contender detail (e.g. labelaudit members)


def _confident_learning(labels, pred_probs, **extra) -> Found:
    """cleanlab's default filter and ranking on out-of-sample probabilities."""
    from cleanlab.count import estimate_joint
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    return Found(
        is_label_issue=find_label_issues(labels, pred_probs),
        label_quality=get_label_quality_scores(labels, pred_probs),
        estimated_noise_rate=float(1 - np.trace(estimate_joint(labels, pred_probs))),
        extra=extra,
    )


def _folds(seed: int):
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(n_splits=CV, shuffle=True, random_state=seed)


def _table_encoder():
    """Standardized numeric columns, one-hot categories: what a careful user feeds a model."""
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer([
        ("num", StandardScaler(), make_column_selector(dtype_include="number")),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
         make_column_selector(dtype_exclude="number")),
    ])


def _flat_pixels(images) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32)


# -- 1. the recipe ------------------------------------------------------------------------------


def recipe(bench: Bench, labels, *, seed: int = 0) -> Found:
    """LogisticRegression + 5-fold cross_val_predict + cleanlab, as in cleanlab's quickstart."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = LogisticRegression(max_iter=1000)
    if bench.kind == "images":
        model, X = make_pipeline(StandardScaler(), clf), _flat_pixels(bench.inputs)
    elif bench.kind == "tabular":
        model, X = make_pipeline(_table_encoder(), clf), bench.inputs
    else:
        model, X = make_pipeline(TfidfVectorizer(), clf), bench.inputs
    pred_probs = cross_val_predict(model, X, labels, cv=_folds(seed), method="predict_proba")
    return _confident_learning(labels, pred_probs)


# -- 2. Datalab given only features -------------------------------------------------------------


def datalab_features(bench: Bench, *, seed: int = 0) -> np.ndarray:
    """The features Datalab gets: raw pixels, standardized columns, TF-IDF + TruncatedSVD."""
    if bench.kind == "images":
        return _flat_pixels(bench.inputs)
    if bench.kind == "tabular":
        return np.asarray(_table_encoder().fit_transform(bench.inputs), dtype=np.float32)
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2).fit_transform(bench.inputs)
    components = min(100, tfidf.shape[1] - 1)
    return TruncatedSVD(components, random_state=seed).fit_transform(tfidf).astype(np.float32)


def datalab_knn(bench: Bench, labels, *, seed: int = 0) -> Found:
    """cleanlab Datalab's label issue check from features alone (its kNN out-of-sample probs)."""
    try:
        from cleanlab import Datalab
    except ImportError as exc:  # cleanlab raises ImportError lazily when `datasets` is missing
        raise SystemExit(f"the Datalab contender needs cleanlab[datalab]: pip install -e "
                         f"'.[bench]' ({exc})") from None

    lab = Datalab(data={"label": np.asarray(labels)}, label_name="label", verbosity=0)
    lab.find_issues(features=datalab_features(bench, seed=seed), issue_types={"label": {}})
    issues = lab.get_issues("label")
    # Datalab keeps CleanLearning's (calibrated) confident joint, in counts: normalise it.
    joint = np.asarray(lab.get_info("label")["confident_joint"], dtype=float)
    return Found(is_label_issue=issues["is_label_issue"].to_numpy(dtype=bool),
                 label_quality=issues["label_score"].to_numpy(dtype=float),
                 estimated_noise_rate=float(1 - np.trace(joint) / joint.sum()))


# -- 3. an expert's afternoon -------------------------------------------------------------------

EXPERT_EPOCHS = {"images": 20, "tabular": 30}
EXPERT_LR = 1e-3
EXPERT_BATCH = 64


def _expert_network(kind: str, shape, n_classes: int):
    from torch import nn

    if kind == "images":
        channels, size, _ = shape
        side = size // 4
        return nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * side * side, 128), nn.ReLU(),
            nn.Linear(128, n_classes),
        )
    return nn.Sequential(nn.Linear(shape[0], 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                         nn.Linear(128, n_classes))


def _fit_best_epoch(kind, X_train, y_train, X_val, y_val, n_classes, *, seed: int) -> np.ndarray:
    """Train with Adam; return the held-out probabilities of the best-validation-loss epoch."""
    import torch

    torch.manual_seed(seed)
    net = _expert_network(kind, X_train.shape[1:], n_classes)
    optimizer = torch.optim.Adam(net.parameters(), lr=EXPERT_LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X_train), torch.from_numpy(y_train)
    Xv, yv = torch.from_numpy(X_val), torch.from_numpy(y_val)
    generator = torch.Generator().manual_seed(seed)
    best_loss, best_probs = np.inf, None
    for _ in range(EXPERT_EPOCHS[kind]):
        net.train()
        for batch in torch.randperm(len(Xt), generator=generator).split(EXPERT_BATCH):
            optimizer.zero_grad()
            loss_fn(net(Xt[batch]), yt[batch]).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            logits = net(Xv)
            val_loss = float(loss_fn(logits, yv))
        if val_loss < best_loss:
            best_loss, best_probs = val_loss, torch.softmax(logits, 1).numpy()
    return best_probs


def expert(bench: Bench, labels, *, seed: int = 0) -> Found:
    """Small CNN / MLP with best-validation-epoch probabilities per fold; TF-IDF + LR for text."""
    labels = np.asarray(labels, dtype=np.int64)
    if bench.kind == "text":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_predict
        from sklearn.pipeline import make_pipeline

        # Sublinear TF, rare words dropped and a weak penalty: the usual hand-tuned text model.
        model = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2, max_df=0.95),
                              LogisticRegression(C=10.0, max_iter=1000))
        pred_probs = cross_val_predict(model, bench.inputs, labels, cv=_folds(seed),
                                       method="predict_proba")
        return _confident_learning(labels, pred_probs)
    pred_probs = np.zeros((len(labels), bench.n_classes), dtype=np.float32)
    if bench.kind == "images":
        X = bench.inputs.astype(np.float32) / 255.0
    for fold, (train, test) in enumerate(_folds(seed).split(np.zeros(len(labels)), labels)):
        if bench.kind == "tabular":  # the scaler is fitted on the training part only
            encoder = _table_encoder().fit(bench.inputs.iloc[train])
            X_train = encoder.transform(bench.inputs.iloc[train]).astype(np.float32)
            X_test = encoder.transform(bench.inputs.iloc[test]).astype(np.float32)
        else:
            X_train, X_test = X[train], X[test]
        pred_probs[test] = _fit_best_epoch(bench.kind, X_train, labels[train], X_test,
                                           labels[test], bench.n_classes, seed=seed + fold)
    return _confident_learning(labels, pred_probs)


# -- 4. labelaudit ------------------------------------------------------------------------------


def write_bench(bench: Bench, labels, folder: Path) -> tuple[Path, list[str]]:
    """Write the data with `labels` as a user would hold it; return (path, id of each sample)."""
    from PIL import Image

    classes = np.asarray(bench.classes, dtype=object)
    if bench.kind == "images":
        root = folder / bench.name
        for name in bench.classes:
            (root / name).mkdir(parents=True)
        ids = [f"{classes[c]}/s{i:05d}.png" for i, c in enumerate(labels)]
        for image, rel in zip(bench.inputs, ids, strict=True):
            mode = "L" if image.shape[0] == 1 else "RGB"
            Image.fromarray(image[0] if mode == "L" else image.transpose(1, 2, 0), mode=mode) \
                .save(root / rel)
        return root, ids
    ids = [str(i) for i in range(len(labels))]  # the loader's row-number ids
    if bench.kind == "tabular":
        frame = bench.inputs.copy()
        frame["label"] = classes[labels]
        path = folder / f"{bench.name}.csv"
        frame.to_csv(path, index=False)
    else:  # parquet keeps multi-line posts intact
        frame = pd.DataFrame({"text": bench.inputs, "label": classes[labels]})
        path = folder / f"{bench.name}.parquet"
        frame.to_parquet(path, index=False)
    return path, ids


def labelaudit_scan(bench: Bench, labels, *, seed: int = 0, settings=None) -> Found:
    """`scan --audit always` with default settings on the noisy data written to a temp path.

    The time to write the temporary copy is left out (`extra['seconds']` is the scan's own,
    loading included); `extra` also keeps the out-of-fold probabilities and member scores.
    """
    from dataclasses import replace

    from labelaudit.scan import ScanSettings, scan

    settings = replace(settings or ScanSettings(), audit="always", seed=seed)
    if bench.kind == "text":  # short texts can pass for a table's category: say what they are
        settings = replace(settings, kind="text", text_column="text")
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        path, ids = write_bench(bench, labels, Path(tmp))
        started = time.perf_counter()
        result = scan(path, settings)
        seconds = time.perf_counter() - started
    position = {sample_id: i for i, sample_id in enumerate(ids)}
    issues = result.issues
    order = np.array([position[str(i)] for i in issues["id"]])
    is_issue = np.zeros(len(ids), dtype=bool)
    quality = np.zeros(len(ids))
    is_issue[order] = issues["is_label_issue"].to_numpy(dtype=bool)
    quality[order] = issues["label_quality"].to_numpy(dtype=float)
    members = {c.removeprefix("quality_"): np.empty(len(ids)) for c in issues.columns
               if c.startswith("quality_")}
    for name, values in members.items():
        values[order] = issues[f"quality_{name}"].to_numpy(dtype=float)
    loaded = {str(i): k for k, i in enumerate(result.dataset.ids)}
    pred_probs = None
    if set(result.dataset.classes) == set(bench.classes):  # columns in the bench's class order
        columns = [result.dataset.classes.index(c) for c in bench.classes]
        rows = [loaded[i] for i in ids]
        pred_probs = result.pred_probs[rows][:, columns]
        member_probs = {name: probs[rows][:, columns]
                        for name, probs in (result.member_probs or {}).items()}
        dynamics = None if result.dynamics is None else result.dynamics[rows][:, columns]
    return Found(is_label_issue=is_issue, label_quality=quality,
                 estimated_noise_rate=float(result.audit["estimated_noise_rate"]),
                 extra={"seconds": seconds, "members": members, "pred_probs": pred_probs,
                        "gate": result.audit.get("gate"),
                        "member_probs": member_probs if pred_probs is not None else {},
                        "dynamics": dynamics if pred_probs is not None else None})


CONTENDERS = {"recipe": recipe, "datalab-knn": datalab_knn, "expert": expert,
              "labelaudit": labelaudit_scan}
