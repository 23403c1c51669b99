"""Read the training logs that frameworks already write into one loss-history table.

`read_log(path)` detects the format and returns a DataFrame with columns fold, epoch, train_loss,
val_loss (the same table `scan` records), ready for `gap.diagnose`. Formats:

- ``lightning-csv``: PyTorch Lightning CSVLogger ``metrics.csv`` (sparse rows: training and
  validation metrics on separate lines; 0-based ``epoch`` column);
- ``keras-csv``: Keras CSVLogger output (``epoch,loss,...,val_loss``, 0-based epochs);
- ``keras-history``: a Keras ``history.history`` dict saved as JSON (one list per metric);
- ``huggingface``: a Hugging Face Trainer ``trainer_state.json`` (``log_history`` with ``loss``
  and ``eval_loss`` in separate entries at fractional epochs), or a folder holding checkpoints;
- ``skorch``: skorch's ``history.json`` (one dict per epoch with ``train_loss``/``valid_loss``);
- ``tensorboard``: event files, or a run folder holding them (read with tensorboard's own
  ``EventAccumulator``; tags are prefixed with their run's sub-folder, e.g.
  ``validation/epoch_loss``);
- ``csv``: any table with an epoch column and train/validation loss columns (and optionally a
  ``fold`` column, like labelaudit's own ``history.csv``).

Epochs are reported as epochs completed (the first epoch is 1, fractional where the log has
fractions); frameworks that count from 0 are shifted by one. Where training and validation loss
are logged at different points (Lightning per step, Hugging Face every ``logging_steps``), each
validation point gets the mean training loss logged since the previous validation point.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np

from .errors import UsageError

FORMATS = ("lightning-csv", "keras-csv", "keras-history", "huggingface", "skorch", "tensorboard",
           "csv")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
EVENT_PREFIX = "events.out.tfevents"

# Exact names first, in order of preference (after normalisation: lower case, runs of other
# characters turned into "_"). Lightning's `train_loss_epoch` beats its per-step twin.
TRAIN_NAMES = ("train_loss_epoch", "train_loss", "loss", "training_loss", "train_epoch_loss",
               "loss_train", "trainloss", "train_loss_mean")
VAL_NAMES = ("val_loss_epoch", "val_loss", "valid_loss", "validation_loss", "eval_loss",
             "validation_epoch_loss", "val_epoch_loss", "loss_val", "loss_valid",
             "loss_validation", "valloss", "test_loss")
EPOCH_NAMES = ("epoch", "epochs", "epoch_num", "step", "iteration", "iter")
_VAL_TOKENS = {"val", "valid", "validation", "eval", "evaluation", "dev", "test"}
_TRAIN_TOKENS = {"train", "training"}
# Keys that hold a loss but never the curve we want (summaries, per-step twins, bests).
_SKIP_TOKENS = {"step", "best", "runtime", "min", "max", "std"}


def _norm(key: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(key).lower()).strip("_")


def _tokens(key: str) -> set[str]:
    return set(_norm(key).split("_"))


def _hint(path, keys) -> str:
    shown = ", ".join(map(str, list(keys)[:40])) or "none"
    more = f" (and {len(keys) - 40} more)" if len(keys) > 40 else ""
    return (f"keys found in {path}: {shown}{more}; pass --train-key and --val-key to say which "
            "hold the training and validation loss")


def _pick(keys, wanted: str | None, *, side: str, path, exclude=()) -> str:
    """Choose the training ('train') or validation ('val') loss key among `keys`."""
    every = list(keys)
    keys = [k for k in keys if k not in exclude]
    what = "training" if side == "train" else "validation"
    if wanted is not None:
        if wanted in keys:
            return wanted
        matches = [k for k in keys if _norm(k) == _norm(wanted)]
        if len(matches) == 1:
            return matches[0]
        raise UsageError(f"no {what} loss key {wanted!r} in the log; " + _hint(path, every))
    by_norm = {}
    for k in keys:
        by_norm.setdefault(_norm(k), k)
    for name in TRAIN_NAMES if side == "train" else VAL_NAMES:
        if name in by_norm:
            return by_norm[name]
    # Fall back on the words in the key: a loss, marked as validation or not.
    losses = [k for k in keys if "loss" in _tokens(k) and not _tokens(k) & _SKIP_TOKENS]
    if side == "val":
        found = [k for k in losses if _tokens(k) & _VAL_TOKENS]
    else:
        found = [k for k in losses if _tokens(k) & _TRAIN_TOKENS and not _tokens(k) & _VAL_TOKENS]
        found = found or [k for k in losses if not _tokens(k) & _VAL_TOKENS]
    if len(found) == 1:
        return found[0]
    if found:
        raise UsageError(f"several keys could be the {what} loss ({', '.join(found)}); pass "
                         f"--{side}-key to choose; " + _hint(path, every))
    raise UsageError(f"found no {what} loss; " + _hint(path, every))


def _frame(epochs, train, val, *, fold=None):
    from .gap import history_frame

    # Plain arrays: the inputs' own indexes (epochs, steps) must not leak into the table.
    frame = history_frame({"fold": 1 if fold is None else np.asarray(fold),
                           "epoch": np.asarray(epochs), "train_loss": np.asarray(train, float),
                           "val_loss": np.asarray(val, float)}).drop(columns="gap")
    if (frame["epoch"] == frame["epoch"].round()).all():
        frame["epoch"] = frame["epoch"].round().astype(int)
    frame["fold"] = frame["fold"].astype(int)
    return frame


def _numeric(frame, column, path):
    import pandas as pd

    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    # read_csv has already turned the usual missing markers (empty, NaN, NA, null) into NaN:
    # any other cell that is not a number is a broken log, not a gap to skip silently.
    blank = raw.astype(str).str.strip().eq("")
    bad = values.isna() & raw.notna() & ~blank
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise UsageError(f"column {column!r} in {path} holds {raw.iloc[row]!r} in data row "
                         f"{row + 1}, which is not a number; fix that cell (leave it empty "
                         "where nothing was logged), or pass --train-key/--val-key to choose "
                         "other columns")
    if values.notna().sum() == 0:
        raise UsageError(f"column {column!r} in {path} holds no numbers; " + _hint(
            path, list(frame.columns)))
    return values


def _numbers(values, key, path, *, at=None) -> np.ndarray:
    """Floats from a JSON log's values: numbers and numeric strings; null is a missing value.

    `at` names each value's place (e.g. "epoch 3") for the message that refuses anything else.

    >>> _numbers([0.5, "0.25", None], "loss", "history.json")
    array([0.5 , 0.25,  nan])
    """
    out = np.full(len(values), np.nan)
    for i, value in enumerate(values):
        if value is None:
            continue
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                out[i] = float(value)  # float() also strips the spaces around "0.5 "
                continue
            except (ValueError, OverflowError):
                pass
        where = at[i] if at is not None else f"epoch {i + 1}"
        raise UsageError(f"{path}: key {key!r} holds {value!r} at {where}, which is not a "
                         "number; each entry must be a number (or null where nothing was "
                         "logged), or pass --train-key/--val-key to choose other keys")
    return out


def align(train_x, train_y, val_x, val_y):
    """Give every validation point the mean training loss logged since the previous one.

    Where no training loss was logged in that interval (sparse logging), the training curve is
    interpolated linearly at the validation point.

    >>> align([0.5, 1.0, 1.5, 2.0], [4.0, 2.0, 1.5, 1.0], [1.0, 2.0], [2.5, 2.0])
    (array([1., 2.]), array([3.  , 1.25]), array([2.5, 2. ]))
    """
    tx, ty = np.asarray(train_x, float), np.asarray(train_y, float)
    vx, vy = np.asarray(val_x, float), np.asarray(val_y, float)
    keep_t, keep_v = np.isfinite(tx) & np.isfinite(ty), np.isfinite(vx) & np.isfinite(vy)
    tx, ty, vx, vy = tx[keep_t], ty[keep_t], vx[keep_v], vy[keep_v]
    order_t, order_v = np.argsort(tx, kind="stable"), np.argsort(vx, kind="stable")
    tx, ty, vx, vy = tx[order_t], ty[order_t], vx[order_v], vy[order_v]
    if not len(tx) or not len(vx):
        return vx[:0], vx[:0], vx[:0]
    out = np.empty(len(vx))
    previous = -np.inf
    for i, x in enumerate(vx):
        inside = (tx > previous) & (tx <= x)
        out[i] = ty[inside].mean() if inside.any() else np.interp(x, tx, ty)
        previous = x
    return vx, out, vy


# ---------------------------------------------------------------------------------------------
# Formats


def _read_table(path: Path):
    import pandas as pd

    if _is_blank(path):
        raise UsageError(f"{path} is empty: a training log needs a header row (e.g. "
                         "epoch,loss,val_loss) and a row per epoch; pass the log once "
                         "training has written to it")
    try:
        # sep=None sniffs the delimiter (Keras' CSVLogger may be given another separator).
        frame = pd.read_csv(path, sep=None, engine="python")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            csv.Error) as exc:
        raise UsageError(f"{path}: cannot read it as a table ({exc}); is it a training log?") \
            from None
    if not len(frame):
        columns = ", ".join(map(str, frame.columns))
        raise UsageError(f"{path} has a header ({columns}) but no rows: no epoch was logged; "
                         "pass the log once training has finished an epoch")
    return frame


def _is_blank(path: Path) -> bool:
    """True for an empty file or one of only whitespace (read until the first other byte)."""
    with path.open("rb") as file:
        while chunk := file.read(1 << 16):
            if chunk.strip():
                return False
    return True


def _is_lightning(frame) -> bool:
    cols = {str(c) for c in frame.columns}
    if not {"epoch", "step"} <= cols:
        return False
    losses = [c for c in frame.columns if "loss" in _tokens(c)]
    if len(losses) < 2:
        return False
    # Lightning writes one dict per log call: train and validation values never share a row.
    filled = frame[losses].notna()
    return bool((filled.sum(axis=1) < len(losses)).any())


def _lightning(frame, path, train_key, val_key):
    keys = [c for c in frame.columns if c not in ("epoch", "step")]
    train = _pick(keys, train_key, side="train", path=path)
    val = _pick(keys, val_key, side="val", path=path, exclude=[train])
    epoch = _numeric(frame, "epoch", path)
    t = _numeric(frame, train, path).groupby(epoch).mean()
    v = _numeric(frame, val, path).groupby(epoch).mean()
    both = t.to_frame("t").join(v.to_frame("v"), how="inner").dropna()
    return _frame(both.index + 1, both["t"], both["v"]), train, val


def _keras_csv(frame, path, train_key, val_key):
    keys = [c for c in frame.columns if c != "epoch"]
    train = _pick(keys, train_key, side="train", path=path)
    val = _pick(keys, val_key, side="val", path=path, exclude=[train])
    epoch = _numeric(frame, "epoch", path)
    return _frame(epoch + 1, _numeric(frame, train, path), _numeric(frame, val, path)), train, val


def _plain_csv(frame, path, train_key, val_key):
    columns = list(frame.columns)
    by_norm = {_norm(c): c for c in columns}
    epoch_col = next((by_norm[n] for n in EPOCH_NAMES if n in by_norm), None)
    fold_col = by_norm.get("fold")
    keys = [c for c in columns if c not in (epoch_col, fold_col)]
    train = _pick(keys, train_key, side="train", path=path)
    val = _pick(keys, val_key, side="val", path=path, exclude=[train])
    if epoch_col is None:
        # One row per epoch, in order, is the only reading that makes sense without a column.
        epochs = np.arange(1, len(frame) + 1)
    else:
        epochs = _numeric(frame, epoch_col, path)
    fold = _folds(frame, fold_col, path) if fold_col is not None else None
    return _frame(epochs, _numeric(frame, train, path), _numeric(frame, val, path),
                  fold=fold), train, val


def _folds(frame, column, path):
    folds = _numeric(frame, column, path)
    if folds.isna().any() or not (folds == folds.round()).all():
        raise UsageError(f"column {column!r} in {path} must hold a whole fold number (1, 2, "
                         "...) in every row; fill in the empty cells, or rename the column if "
                         "it holds something else")
    return folds


def _keras_history(data: dict, path, train_key, val_key):
    keys = [k for k, v in data.items() if isinstance(v, list)]
    train = _pick(keys, train_key, side="train", path=path)
    val = _pick(keys, val_key, side="val", path=path, exclude=[train])
    n = min(len(data[train]), len(data[val]))
    return _frame(np.arange(1, n + 1), _numbers(data[train][:n], train, path),
                  _numbers(data[val][:n], val, path)), train, val


def _huggingface(data: dict, path, train_key, val_key):
    entries = [e for e in data.get("log_history", []) if isinstance(e, dict)]
    # The final summary entry carries `train_loss` (the whole run's mean): not a curve point.
    entries = [e for e in entries if "train_runtime" not in e]
    keys = list(dict.fromkeys(k for e in entries for k in e if k not in ("epoch", "step")))
    if val_key is None and not any(k.startswith("eval_") for k in keys):
        raise UsageError(f"{path}: log_history holds no evaluation (eval_loss) entries; set "
                         "eval_strategy='epoch' (or 'steps') so the Trainer evaluates during "
                         "training; " + _hint(path, keys))
    train = _pick(keys, train_key, side="train", path=path)
    val = _pick(keys, val_key, side="val", path=path, exclude=[train])
    x_key = "epoch" if all("epoch" in e for e in entries) else "step"
    t = [(e[x_key], e[train]) for e in entries if train in e and x_key in e]
    v = [(e[x_key], e[val]) for e in entries if val in e and x_key in e]
    if not t or not v:
        raise UsageError(f"{path}: log_history has {len(t)} {train!r} and {len(v)} {val!r} "
                         "entries; both are needed (set eval_strategy so the Trainer evaluates "
                         "during training); " + _hint(path, keys))

    def points(pairs, key):
        at = [f"{x_key} {x!r}" for x, _ in pairs]
        return (_numbers([x for x, _ in pairs], x_key, path, at=at),
                _numbers([y for _, y in pairs], key, path, at=at))

    x, tr, va = align(*points(t, train), *points(v, val))
    return _frame(np.round(x, 4), tr, va), train, val


def _skorch(data: list, path, train_key, val_key):
    rows = [r for r in data if isinstance(r, dict)]
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in ("epoch", "batches")))
    train = _pick(keys, train_key, side="train", path=path)
    val = _pick(keys, val_key, side="val", path=path, exclude=[train])
    rows = [r for r in rows if r.get(train) is not None and r.get(val) is not None]
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    at = [f"epoch {e!r}" for e in epochs]
    return _frame(_numbers(epochs, "epoch", path, at=at),
                  _numbers([r[train] for r in rows], train, path, at=at),
                  _numbers([r[val] for r in rows], val, path, at=at)), train, val


def _event_scalars(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{key: (steps, values)} for every scalar in the event files under `root`."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        from tensorboard.util import tensor_util
    except ImportError:
        raise UsageError("reading TensorBoard event files needs the tensorboard package; "
                         "install it with: pip install 'labelaudit[tensorboard]'") from None

    folders = sorted({p.parent for p in ([root] if root.is_file() else
                                         root.rglob(f"{EVENT_PREFIX}*"))})
    base = root.parent if root.is_file() else root
    scalars = {}
    for folder in folders:
        # One accumulator per run folder (that is how TensorBoard itself groups files).
        target = str(root) if root.is_file() else str(folder)
        accumulator = EventAccumulator(target, size_guidance={"scalars": 0, "tensors": 0})
        try:
            accumulator.Reload()
        except Exception as exc:  # a corrupt or truncated event file
            raise UsageError(f"{target}: cannot read the TensorBoard events ({exc})") from None
        run = folder.relative_to(base).as_posix()
        prefix = "" if run == "." else run + "/"
        tags = accumulator.Tags()
        for tag in tags.get("scalars", []):
            events = accumulator.Scalars(tag)
            scalars[prefix + tag] = (np.array([e.step for e in events], float),
                                     np.array([e.value for e in events], float))
        # TF2 (Keras' TensorBoard callback) writes scalars as tensors of the scalars plugin.
        for tag in tags.get("tensors", []):
            events = accumulator.Tensors(tag)
            try:
                values = [float(tensor_util.make_ndarray(e.tensor_proto)) for e in events]
            except (TypeError, ValueError):
                continue
            scalars[prefix + tag] = (np.array([e.step for e in events], float),
                                     np.array(values, float))
    return scalars


def _tensorboard(root: Path, path, train_key, val_key):
    scalars = _event_scalars(root)
    if not scalars:
        raise UsageError(f"{path}: the TensorBoard event files hold no scalars; is this the run "
                         "folder that training wrote to?")
    keys = list(scalars)
    train = _pick(keys, train_key, side="train", path=path)
    val = _pick(keys, val_key, side="val", path=path, exclude=[train])
    (ts, tv), (vs, vv) = scalars[train], scalars[val]
    epoch_key = next((k for k in keys if _norm(k.rsplit("/", 1)[-1]) == "epoch"), None)
    leaf = _norm(train.rsplit("/", 1)[-1])
    if epoch_key is not None:
        es, ev = scalars[epoch_key]
        order = np.argsort(es, kind="stable")
        es, ev = es[order], ev[order]
        if not np.allclose(ev, np.round(ev)):
            # Hugging Face logs `train/epoch` as fractional epochs completed: interpolate.
            x, tr, va = align(np.interp(ts, es, ev), tv, np.interp(vs, es, ev), vv)
            return _frame(np.round(x, 4), tr, va), train, val
        # Lightning logs the 0-based epoch index at every logged step: group by it.
        def to_epoch(steps):
            at = np.clip(np.searchsorted(es, steps, side="right") - 1, 0, len(es) - 1)
            return ev[at] + 1

        t = _frame_series(to_epoch(ts), tv)
        v = _frame_series(to_epoch(vs), vv)
        both = t.to_frame("t").join(v.to_frame("v"), how="inner").dropna()
        return _frame(both.index, both["t"], both["v"]), train, val
    x, tr, va = align(ts, tv, vs, vv)
    if leaf.startswith("epoch_"):  # Keras' callback: step is the 0-based epoch
        x = x + 1
    return _frame(x, tr, va), train, val


def _frame_series(x, y):
    import pandas as pd

    return pd.Series(y).groupby(np.asarray(x)).mean()


# ---------------------------------------------------------------------------------------------
# Detection


def _find_in_folder(folder: Path) -> Path:
    if any(folder.rglob(f"{EVENT_PREFIX}*")):
        return folder
    states = sorted(folder.rglob("trainer_state.json"), key=_checkpoint_step)
    if states:
        # Each checkpoint-N holds the whole log up to step N: the latest one has it all.
        return states[-1]
    known = [p for name in ("metrics.csv", "history.json", "history.csv", "log.csv",
                            "training.log")
             for p in sorted(folder.rglob(name))]
    if len(known) == 1:
        return known[0]
    if len(known) > 1:
        listing = ", ".join(str(p) for p in known[:10])
        raise UsageError(f"{folder} holds several training logs ({listing}); pass one of them")
    raise UsageError(f"{folder}: found no training log in it (TensorBoard event files, "
                     "trainer_state.json, metrics.csv, history.json); pass the log file itself")


def _checkpoint_step(path: Path):
    match = re.search(r"checkpoint-(\d+)", path.as_posix())
    return (1, int(match.group(1))) if match else (2, 0)


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None


def detect_format(path) -> str:
    """Name the log format of `path` (one of FORMATS), without reading the whole log.

    >>> import tempfile
    >>> log = Path(tempfile.mkdtemp()) / "metrics.csv"
    >>> _ = log.write_text("epoch,step,train_loss,val_loss\\n0,9,0.9,\\n0,9,,1.0\\n")
    >>> detect_format(log)
    'lightning-csv'
    """
    return _read(Path(path), None, None, detect_only=True)[0]


def read_log(path, *, train_key: str | None = None, val_key: str | None = None):
    """Read a training log into a DataFrame: fold, epoch, train_loss, val_loss.

    The format is detected (see the module docstring); `train_key`/`val_key` name the column,
    key or TensorBoard tag that holds each loss when the defaults do not find them. The frame's
    ``attrs`` record ``format``, ``train_key``, ``val_key`` and ``path``.

    >>> import json, tempfile
    >>> log = Path(tempfile.mkdtemp()) / "history.json"
    >>> _ = log.write_text(json.dumps({"loss": [1.0, 0.7], "val_loss": [1.1, 0.9]}))
    >>> history = read_log(log)
    >>> history.attrs["format"], history.to_dict("list")
    ('keras-history', {'fold': [1, 1], 'epoch': [1, 2], 'train_loss': [1.0, 0.7], \
'val_loss': [1.1, 0.9]})
    """
    path = Path(path)
    fmt, frame, train, val, source = _read(path, train_key, val_key)
    frame = frame.dropna(subset=["train_loss", "val_loss"], how="all").reset_index(drop=True)
    if frame[["train_loss", "val_loss"]].notna().all(axis=1).sum() == 0:
        raise UsageError(f"{source}: no epoch has both a {train!r} and a {val!r} value")
    frame.attrs.update({"format": fmt, "train_key": str(train), "val_key": str(val),
                        "path": str(source)})
    return frame


def _read(path: Path, train_key, val_key, *, detect_only=False):
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder; check the path")
    source = _find_in_folder(path) if path.is_dir() else path
    if source.is_dir() or source.name.startswith(EVENT_PREFIX):
        if detect_only:
            return ("tensorboard",)
        return ("tensorboard", *_tensorboard(source, path, train_key, val_key), source)
    suffix = source.suffix.lower()
    if suffix == ".json":
        data = _load_json(source)
        fmt, reader = _json_format(data, source)
    elif suffix in TABLE_SUFFIXES or suffix == ".log":
        data = _read_table(source)
        fmt, reader = _table_format(data)
    else:
        raise UsageError(f"{source}: unknown log format; pass a metrics.csv, a CSV log, a "
                         "trainer_state.json, a history.json or a TensorBoard run folder")
    if detect_only:
        return (fmt,)
    return (fmt, *reader(data, source, train_key, val_key), source)


def _json_format(data, source: Path):
    """(format, reader) of a parsed JSON log."""
    if isinstance(data, dict) and isinstance(data.get("log_history"), list):
        return "huggingface", _huggingface
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        return "skorch", _skorch
    if isinstance(data, dict) and any(isinstance(v, list) for v in data.values()):
        return "keras-history", _keras_history
    raise UsageError(f"{source}: a JSON log should be a Hugging Face trainer_state.json, "
                     "a skorch history.json or a Keras history dict; "
                     + _hint(source, list(data) if isinstance(data, dict) else []))


def _table_format(frame):
    """(format, reader) of a log read as a table."""
    columns = [str(c) for c in frame.columns]
    if _is_lightning(frame):
        return "lightning-csv", _lightning
    if columns and columns[0] == "epoch" and "loss" in columns and any(
            c.startswith("val_") for c in columns):
        return "keras-csv", _keras_csv
    return "csv", _plain_csv


def diagnose_log(path, *, train_key: str | None = None, val_key: str | None = None,
                 plot=None) -> dict:
    """Read a training log, diagnose its gap and (with `plot`) draw it; return one JSON-ready dict.

    The dict is the verdict (`gap.GapVerdict.to_dict()`) plus ``format``, ``path``,
    ``train_key``, ``val_key`` and ``plot`` (the file written, or None).

    >>> import json, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> epochs = range(1, 21)  # training loss keeps falling while validation loss creeps up
    >>> _ = (folder / "history.json").write_text(json.dumps({
    ...     "loss": [1 - 0.04 * e for e in epochs], "val_loss": [0.8 + 0.01 * e for e in epochs]}))
    >>> result = diagnose_log(folder / "history.json", plot=folder / "curves.svg")
    >>> result["format"], result["regime"], Path(result["plot"]).name
    ('keras-history', 'steep-climb', 'curves.svg')
    """
    from .gap import diagnose
    from .plot import check_plot_path

    if plot is not None:  # before reading: a large log should not be read for nothing
        check_plot_path(plot)
    history = read_log(path, train_key=train_key, val_key=val_key)
    verdict = diagnose(history)
    written = None
    if plot is not None:
        from .plot import save_history_plot

        written = str(save_history_plot(history, plot, verdict=verdict))
    return {**verdict.to_dict(), "format": history.attrs["format"],
            "path": history.attrs["path"], "train_key": history.attrs["train_key"],
            "val_key": history.attrs["val_key"], "plot": written}
