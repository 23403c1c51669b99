"""Torch models as scikit-learn estimators: a small CNN for images, an MLP for features.

`TorchClassifier.fit` records train and validation loss after every epoch (``history_``) and
keeps the weights of the best-validation epoch, whose probabilities ``predict_proba`` returns.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

# Train loss is evaluated after each epoch on a seeded subset of at most this many training
# samples: their mean is precise enough for the gap rule, and more would slow each epoch.
MAX_TRAIN_EVAL = 4_096


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@contextmanager
def reproducible(device: str):
    """On a CUDA GPU, deterministic kernels only, so that the same seed trains the same weights.

    cuDNN's autotuner and its fastest convolution gradients vary from run to run, and so would
    the ranking; cuBLAS needs its workspace setting. torch's global switches are restored
    afterwards. The CPU needs none of this.
    """
    import torch

    if not str(device).startswith("cuda"):
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    cudnn = torch.backends.cudnn
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), cudnn.deterministic,
             cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        cudnn.deterministic, cudnn.benchmark = saved[2], saved[3]


def _build_network(kind: str, n_features: int | tuple, n_classes: int, hidden: int):
    from torch import nn

    if kind == "images":
        channels, size, _ = n_features
        if size > 16:
            # MNIST-sized and larger: strided convolutions downsample as they filter, cheaper
            # than convolution plus max pooling and, trained on shifted images, as good.
            c1, c2, side = 16, 32, (size + 3) // 4  # two stride-2 convolutions, padding 1
            return nn.Sequential(
                nn.Conv2d(channels, c1, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                nn.Linear(c2 * side * side, hidden), nn.ReLU(),
                nn.Linear(hidden, n_classes),
            )
        c1, c2 = 32, 64  # small images (digits' 8x8): wide layers and max pooling are cheap
        pooled = max(1, size // 4)
        side = ((size + 1) // 2 + 1) // 2  # after two ceil-mode 2x2 poolings
        layers = [
            nn.Conv2d(channels, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        ]
        if side != pooled:  # an identity pooling only costs time
            # What AdaptiveAvgPool2d(pooled) computes for these sizes (pooled is 1 or side - 1),
            # bit for bit, with a backward pass that is deterministic on a GPU too.
            layers.append(nn.AvgPool2d(side - pooled + 1, stride=1))
        return nn.Sequential(
            *layers, nn.Flatten(),
            nn.Linear(c2 * pooled * pooled, hidden), nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )
    return nn.Sequential(
        nn.Linear(n_features, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )


def _train_eval_rows(n: int, random_state) -> np.ndarray:
    """The training rows whose loss is measured each epoch: all, or MAX_TRAIN_EVAL of them."""
    if n <= MAX_TRAIN_EVAL:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, MAX_TRAIN_EVAL, replace=False))


def _label_errors(y_train, train_probs, y_val, val_probs) -> dict:
    """{"train_error", "val_flagged", "val_contradicted"}: the share of training labels that are
    not the top class; of validation labels that cleanlab's confident learning flags (None when a
    class is missing there, where its per-class thresholds are undefined); and of validation
    labels the network gives under gap.CONTRADICTED_P (both None for fewer than
    gap.MIN_HELD_OUT validation samples)."""
    import warnings

    from cleanlab.count import num_label_issues

    from .gap import CONTRADICTED_P, MIN_HELD_OUT

    y_val = np.asarray(y_val, dtype=np.int64)
    flagged = contradicted = None
    if len(y_val) >= MIN_HELD_OUT:
        contradicted = float((val_probs[np.arange(len(y_val)), y_val] < CONTRADICTED_P).mean())
        if len(np.unique(y_val)) == val_probs.shape[1]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                flagged = num_label_issues(y_val, val_probs) / len(y_val)
    return {"train_error": float((train_probs.argmax(1) != y_train).mean()),
            "val_flagged": flagged, "val_contradicted": contradicted}


class TorchClassifier(ClassifierMixin, BaseEstimator):
    """A small torch network with an sklearn face.

    kind: 'images' (X is uint8, shape (n, channels, size, size)) or 'features' (X is a float
    array or a scipy sparse matrix).

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = TorchClassifier(kind="features", epochs=5).fit(X.astype("float32"), y)
    >>> clf.predict_proba(X[:2].astype("float32")).shape
    (2, 3)
    """

    def __init__(self, *, kind="features", n_classes=None, epochs=30, batch_size=64, lr=1e-3,
                 hidden=128, weight_decay=0.0, patience=None, min_epochs=0, shift=0,
                 random_state=0, device="cpu", track_labels=False):
        # Stored as given, as scikit-learn's estimators do, so that `clone` works.
        self.kind, self.n_classes, self.epochs = kind, n_classes, epochs
        self.batch_size, self.lr, self.hidden = batch_size, lr, hidden
        self.weight_decay, self.patience, self.min_epochs = weight_decay, patience, min_epochs
        self.shift, self.random_state, self.device = shift, random_state, device
        self.track_labels = track_labels

    # -- batches -------------------------------------------------------------------------------
    def _batch(self, X, index):
        import torch

        rows = X[index]
        if self.kind == "images":
            t = torch.from_numpy(np.ascontiguousarray(rows)).float().div_(255.0).sub_(0.5)
        elif hasattr(rows, "toarray"):
            t = torch.from_numpy(rows.toarray())
        else:
            t = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
        return t.to(self._device)

    def _shifted(self, batch, generator):
        """Translate each image by up to `shift` pixels each way (zero padding): augmentation.

        A network that must recognise a digit wherever it sits learns shapes rather than single
        images, so it memorises wrong labels later and ranks them better.
        """
        import torch

        n, _, height, width = batch.shape
        s = self.shift
        # Edges repeat outward, so the padding matches any background colour.
        padded = torch.nn.functional.pad(batch, (s, s, s, s), mode="replicate")
        dy, dx = torch.randint(0, 2 * s + 1, (2, n), generator=generator)
        rows = (dy[:, None] + torch.arange(height))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(width))[:, None, None, :]
        return padded[torch.arange(n)[:, None, None, None], torch.arange(batch.shape[1])[
            None, :, None, None], rows, cols]

    def _forward(self, module, X, index, width: int, then=lambda out: out,
                 view=lambda batch: batch):
        """`then(module(view(rows)))` for rows `index`, in inference mode and large batches."""
        import torch

        module.eval()
        out = np.empty((len(index), width), dtype=np.float32)
        step = max(self.batch_size, 512)
        with torch.no_grad(), reproducible(self._device):
            for start in range(0, len(index), step):
                part = index[start:start + step]
                out[start:start + len(part)] = then(
                    module(view(self._batch(X, part)))).cpu().numpy()
        return out

    def _eval(self, X, y=None, index=None):
        """Mean cross-entropy (when y given) and softmax probabilities for rows `index`."""
        import torch

        index = np.arange(X.shape[0]) if index is None else index
        probs = self._forward(self.network_, X, index, self.n_classes_,
                              then=lambda logits: torch.softmax(logits, 1))
        loss = None
        if y is not None:
            picked = probs[np.arange(len(index)), y[index]]
            loss = float(-np.log(np.clip(picked, 1e-7, 1.0)).mean())
        return loss, probs

    # -- sklearn API ---------------------------------------------------------------------------
    def fit(self, X, y, *, X_val=None, y_val=None, on_epoch=None, trajectory=False):
        """Train for `epochs`; with a validation set, keep the best-validation epoch's weights.

        on_epoch(epoch, train_loss, val_loss) is called after each epoch (for progress and
        live gap monitoring). With `track_labels`, each epoch of ``history_`` also holds
        ``train_error`` (the share of training labels that are not the network's top class) and
        ``val_flagged`` (the share of validation labels cleanlab's confident learning flags on
        this epoch's probabilities) and ``val_contradicted`` (the share it gives under
        gap.CONTRADICTED_P): the per-sample side of the gap (gap.diagnose).
        With `trajectory`, ``trajectory_`` holds each training sample's
        softmax probabilities averaged over the epochs it trained, read from the training
        passes themselves (no extra forward pass).
        """
        self._device = resolve_device(self.device)
        with reproducible(self._device):
            return self._fit(X, y, X_val=X_val, y_val=y_val, on_epoch=on_epoch,
                             trajectory=trajectory)

    def _fit(self, X, y, *, X_val, y_val, on_epoch, trajectory):
        import torch

        y = np.asarray(y, dtype=np.int64)
        generator, optimizer = self._start(X, y)
        loss_fn = torch.nn.CrossEntropyLoss()
        train_eval = _train_eval_rows(X.shape[0], self.random_state)
        y_t = torch.from_numpy(y)
        self.history_, self.best_epoch_, self.val_pred_probs_ = [], None, None
        best_state = None
        seen = np.zeros((X.shape[0], self.n_classes_), dtype=np.float32) if trajectory else None
        for epoch in range(1, self.epochs + 1):
            self._train_epoch(X, y_t, optimizer, loss_fn, generator, seen)
            train_loss, train_probs = self._eval(X, y, train_eval)
            row = {"epoch": epoch, "train_loss": train_loss, "val_loss": None}
            if X_val is not None:
                row["val_loss"], val_probs, best_state = self._validate(X_val, y_val, epoch,
                                                                        best_state)
                if self.track_labels:
                    row.update(_label_errors(y[train_eval], train_probs, y_val, val_probs))
            self.history_.append(row)
            val_loss = row["val_loss"]
            if on_epoch is not None:
                on_epoch(epoch, train_loss, val_loss)
            if self._patience_ran_out(epoch):
                break  # early stopping: later epochs cannot change the kept probabilities
        if best_state is not None:
            self.network_.load_state_dict(best_state)
        self.trajectory_ = None if seen is None else seen / len(self.history_)
        return self

    def _start(self, X, y):
        """Seed, build the network and its optimizer: (batch-order generator, optimizer)."""
        import torch

        self.n_classes_ = int(self.n_classes or (y.max() + 1))
        self.classes_ = np.arange(self.n_classes_)
        torch.manual_seed(self.random_state)
        generator = torch.Generator().manual_seed(self.random_state)
        shape = tuple(X.shape[1:]) if self.kind == "images" else X.shape[1]
        self.network_ = _build_network(self.kind, shape, self.n_classes_, self.hidden).to(
            self._device)
        optimizer = torch.optim.Adam(self.network_.parameters(), lr=self.lr,
                                     weight_decay=self.weight_decay)
        return generator, optimizer

    def _validate(self, X_val, y_val, epoch: int, best_state):
        """This epoch's validation loss and probabilities, and the weights to keep: this
        epoch's (and its probabilities) when its loss is the lowest so far, else `best_state`."""
        val_loss, val_probs = self._eval(X_val, np.asarray(y_val, dtype=np.int64))
        best = (np.inf if self.best_epoch_ is None
                else self.history_[self.best_epoch_ - 1]["val_loss"])
        if val_loss < best:
            self.best_epoch_, self.val_pred_probs_ = epoch, val_probs
            best_state = {k: v.detach().clone() for k, v in self.network_.state_dict().items()}
        return val_loss, val_probs, best_state

    def _patience_ran_out(self, epoch: int) -> bool:
        return (self.patience is not None and self.best_epoch_ is not None
                and epoch >= self.min_epochs and epoch - self.best_epoch_ >= self.patience)

    def _train_epoch(self, X, y_t, optimizer, loss_fn, generator, seen) -> None:
        """One pass over X in shuffled batches; adds each batch's softmax to `seen` when given."""
        import torch

        n = X.shape[0]
        self.network_.train()
        order = torch.randperm(n, generator=generator).numpy()
        for start in range(0, n, self.batch_size):
            part = order[start:start + self.batch_size]
            optimizer.zero_grad(set_to_none=True)
            batch = self._batch(X, part)
            if self.kind == "images" and self.shift:
                batch = self._shifted(batch, generator)
            logits = self.network_(batch)
            loss = loss_fn(logits, y_t[part].to(self._device))
            if seen is not None:
                seen[part] += torch.softmax(logits.detach(), 1).cpu().numpy()
            loss.backward()
            optimizer.step()

    def predict_proba(self, X):
        return self._eval(X)[1]

    def shifted_proba(self, X, index=None):
        """Softmax probabilities for rows `index`, averaged over each image and its four
        one-pixel shifts (edges repeated, as in training): evidence that rests on where one
        image happens to sit counts less."""
        import torch

        index = np.arange(X.shape[0]) if index is None else index

        def moved(dy: int, dx: int):
            def view(batch):
                height, width = batch.shape[2:]
                padded = torch.nn.functional.pad(batch, (1, 1, 1, 1), mode="replicate")
                return padded[:, :, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
            return view

        return np.mean([self._forward(self.network_, X, index, self.n_classes_,
                                      then=lambda logits: torch.softmax(logits, 1),
                                      view=moved(dy, dx))
                        for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))], axis=0)

    def transform(self, X, index=None):
        """The penultimate layer's activations (the learned features) for rows `index`."""
        index = np.arange(X.shape[0]) if index is None else index
        return self._forward(self.network_[:-1], X, index, self.hidden)

    def predict(self, X):
        return self.predict_proba(X).argmax(1)
