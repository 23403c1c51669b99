"""Every scan setting, declared once: its default, its --help text and its constraint.

A setting is a field of one concern (loading, training, audit, output and performance) whose
metadata is a `Setting`. The command line (`cli.settings_options`), `validate_settings`, the
report's settings table (`SHOWN`), the result cache's key (`RESULT_FREE`) and the model's own
settings (`train.ModelSettings`) all read these declarations, so a new setting is one field here.
`ScanSettings` inherits every concern, so it stays one flat object:

>>> from dataclasses import asdict
>>> settings = ScanSettings(audit="always", epochs=2)
>>> settings.epochs, asdict(settings)["cv"]
(2, 5)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

from .errors import UsageError

KINDS = ("images", "tabular", "text")
AUDIT_MODES = ("auto", "always", "never")
FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
           "predicted_neq_given", "low_normalized_margin", "low_self_confidence")
BACKENDS = ("local", "dask")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")

Check = Callable[[str, object], None]  # (option name, value); raises UsageError


@dataclass(frozen=True)
class Setting:
    """How a setting is offered and checked; `help` None keeps it out of the command line."""

    help: str | None = None
    checks: tuple[Check, ...] = ()
    choices: tuple[str, ...] | None = None  # the command line offers exactly these
    flag: str | None = None  # the option's name, when it is not --field-name
    path: bool = False  # a path on the command line, a str in the settings
    shown: bool = False  # listed in the report's settings table


def setting(default, *, help: str | None = None, check: Check | None = None,
            choices: tuple[str, ...] | None = None, flag: str | None = None,
            path: bool = False, shown: bool = False):
    """A dataclass field that declares one setting; `choices` also makes its check.

    >>> declared(field_named("cv")).help
    'Cross-validation folds.'
    """
    checks = tuple(c for c in (one_of(choices) if choices else None, check) if c is not None)
    return field(default=default, metadata={"setting": Setting(
        help=help, checks=checks, choices=choices, flag=flag, path=path, shown=shown)})


# -- constraints: each raises UsageError with a message that names the option -------------------


def at_least(low, *, unit: str = "", or_none: str = "") -> Check:
    """Refuse a number below `low`; None passes, as it means "automatic".

    >>> at_least(2)("--cv", 1)
    Traceback (most recent call last):
    labelaudit.errors.UsageError: --cv must be at least 2 (got 1)
    """
    def check(name, value):
        if value is not None and value < low:
            bound = f"{low} or more" if low == 0 else f"at least {low}{unit}{or_none}"
            raise UsageError(f"{name} must be {bound} (got {value})")
    return check


def positive(name, value) -> None:
    """Refuse zero, negatives, infinity and NaN.

    >>> positive("--lr", float("nan"))
    Traceback (most recent call last):
    labelaudit.errors.UsageError: --lr must be a positive number (got nan)
    """
    if not 0 < value < math.inf:
        raise UsageError(f"{name} must be a positive number (got {value})")


def not_zero(advice: str) -> Check:
    """Refuse 0, saying what to pass instead.

    >>> not_zero("use 1")("--n-jobs", 0)
    Traceback (most recent call last):
    labelaudit.errors.UsageError: --n-jobs must not be 0; use 1
    """
    def check(name, value):
        if value == 0:
            raise UsageError(f"{name} must not be 0; {advice}")
    return check


def one_of(choices: tuple[str, ...]) -> Check:
    """Refuse a value outside `choices` (None passes: the default decides).

    >>> one_of(BACKENDS)("--backend", "spark")
    Traceback (most recent call last):
    labelaudit.errors.UsageError: --backend must be local or dask, not 'spark'
    """
    listed = " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)

    def check(name, value):
        if value is not None and value not in choices:
            raise UsageError(f"{name} must be {listed}, not {value!r}")
    return check


def matches(pattern: re.Pattern, described: str) -> Check:
    """Refuse a value that `pattern` does not match in full.

    >>> matches(DEVICE_PATTERN, "auto, cpu, cuda, cuda:N or mps")("--device", "gpu")
    Traceback (most recent call last):
    labelaudit.errors.UsageError: --device must be auto, cpu, cuda, cuda:N or mps, not 'gpu'
    """
    def check(name, value):
        if not pattern.fullmatch(value):
            raise UsageError(f"{name} must be {described}, not {value!r}")
    return check


def a_seed(name, value) -> None:
    """Refuse a seed numpy cannot take (noise.check_seed words the message).

    >>> a_seed("--seed", 7)
    """
    from .noise import check_seed

    check_seed(value)


# -- the concerns ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LoadSettings:
    """How the dataset is read."""

    PANEL: ClassVar[str] = "Data"

    kind: str | None = setting(None, help="Override the detected data kind.", choices=KINDS)
    label_column: str | None = setting(None, help="Table column with the labels.", shown=True)
    text_column: str | None = setting(None, help="Table column with free text.", shown=True)
    id_column: str | None = setting(
        None, help="Table column with stable ids (default: the one column named like an id, "
                   "or else holding short distinct values, unique in every row; '' for row "
                   "numbers).", shown=True)
    encoding: str = setting("utf-8", help="Text encoding of csv/tsv/jsonl files.")
    image_size: int | None = setting(
        None, help="Side of the square images are resized to (default: median size, at most "
                   "32).", check=at_least(4, unit=" pixels"), shown=True)
    strict: bool = setting(False, help="Refuse unreadable files instead of skipping.")
    follow_symlinks: bool = setting(
        False, help="Follow symlinks that lead outside the dataset folder.")


@dataclass(frozen=True, kw_only=True)
class TrainingSettings:
    """How each fold's network trains (train.ModelSettings copies these)."""

    PANEL: ClassVar[str] = "Model"

    epochs: int = setting(30, help="Training epochs per fold.", check=at_least(1), shown=True)
    batch_size: int | None = setting(  # None: auto_batch_size
        None, help="Mini-batch size (default: 64, larger for big datasets).",
        check=at_least(1), shown=True)
    lr: float = setting(3e-3, help="Adam learning rate.", check=positive, shown=True)
    hidden: int = setting(128, shown=True)
    patience: int | None = setting(5)  # folds 2..cv stop this many epochs after their best
    monitor_patience: int | None = setting(8)  # the monitor fold; None trains all --epochs
    monitor_min_epochs: int = setting(15)
    device: str = setting(  # resolved where torch trains
        "auto", help="auto, cpu, cuda, cuda:N or mps.",
        check=matches(DEVICE_PATTERN, "auto, cpu, cuda, cuda:N or mps"), shown=True)


_WHOLE_FOLD = ", or None to watch all of fold 1"


@dataclass(frozen=True, kw_only=True)
class AuditSettings:
    """How folds are split, the gap is watched and label issues are found."""

    PANEL: ClassVar[str] = "Audit"

    cv: int = setting(5, help="Cross-validation folds.", check=at_least(2), shown=True)
    seed: int = setting(0, help="Random seed for folds, weights and sampling.", check=a_seed,
                        shown=True)
    audit: str = setting("auto", help="auto: audit when the gap climbs steeply; always; never.",
                         choices=AUDIT_MODES, shown=True)
    filter_by: str = setting(
        "prune_by_noise_rate", help="cleanlab's rule that turns the scores into is_label_issue "
        "(find_label_issues filter_by); the ranking is the same under every rule.",
        choices=FILTERS, shown=True)
    # Above this many samples the gap is watched on a seeded subsample of this size (fold 0 in
    # history.csv) instead of on fold 1; None: always fold 1, on all its samples.
    monitor_max_samples: int | None = setting(12_500, check=at_least(20, or_none=_WHOLE_FOLD))
    # Images above 16 pixels are watched by a separate, unshifted fold 0 anyway (see
    # scan._audit); it watches at most this many samples, the gap calibration's mnist-3000
    # (None: the limit above).
    image_monitor_max_samples: int | None = setting(
        3_000, check=at_least(20, or_none=_WHOLE_FOLD))


@dataclass(frozen=True, kw_only=True)
class ModelInputSettings:
    """What the user brings from a model of their own: probabilities, a log, vectors, an encoder."""

    PANEL: ClassVar[str] = "Your model"

    pred_probs: str | None = setting(
        None, help="Your model's out-of-fold probabilities (.npy in dataset order, or CSV/Parquet "
                   "with the id column and one column per class): nothing trains, the audit "
                   "ranks with them.", path=True, shown=True)
    history: str | None = setting(
        None, help="Your model's training log (any format `labelaudit gap` reads), read for the "
                   "gap verdict beside --pred-probs.", path=True, shown=True)
    embeddings: str | None = setting(
        None, help="One vector per sample (.npy in dataset order, or Parquet with the id column "
                   "and a vector column): neighbour and linear members learn from them.",
        path=True, shown=True)
    encoder: str | None = setting(
        None, help="A pretrained encoder, by hub name or local path, that embeds the texts or "
                   "images for those members (needs labelaudit's encoders extra).",
        shown=True)


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """Where and how fast a scan runs and what it shows: these never change its result."""

    PANEL: ClassVar[str] = "Output and performance"

    top_k: int = setting(1000, help="Flagged samples embedded in report.html.", check=at_least(0),
                         shown=True)
    reviewed: str | None = setting(
        None, help="decisions.csv from an earlier review: those samples leave the list to "
                   "review.", path=True)
    n_jobs: int | None = setting(  # None: backends.auto_jobs
        None, help="Folds trained in parallel processes (-1: all cores; default: all cores from "
                   "5,000 samples up, else 1).", check=not_zero("use 1 for serial, -1 for all "
                                                               "cores"))
    backend: str = setting("local", help="local, or dask to run folds on a cluster.",
                           check=one_of(BACKENDS))
    scheduler: str | None = setting(None, help="Dask scheduler address (or "
                                               "LABELAUDIT_DASK_SCHEDULER).")
    cache_dir: str | None = setting(  # None: no cache
        None, help="Cache folder for finished folds and results (default: OUT/cache).",
        flag="--cache", path=True)


@dataclass(frozen=True, kw_only=True)
class ScanSettings(RunSettings, ModelInputSettings, AuditSettings, TrainingSettings,
                   LoadSettings):
    """Everything that determines a scan's result (recorded flat in summary.json)."""


# -- what the declarations give -------------------------------------------------------------------


def declared(f: Field) -> Setting:
    """The declaration of a settings field."""
    return f.metadata["setting"]


def field_named(name: str) -> Field:
    """ScanSettings' field `name`.

    >>> field_named("lr").default
    0.003
    """
    return next(f for f in fields(ScanSettings) if f.name == name)


def option_name(f: Field) -> str:
    """The name messages use: the command-line flag, or the field's name when it has none.

    >>> option_name(field_named("batch_size")), option_name(field_named("monitor_min_epochs"))
    ('--batch-size', 'monitor_min_epochs')
    """
    setting_ = declared(f)
    if setting_.help is None:
        return f.name
    return setting_.flag or "--" + f.name.replace("_", "-")


def panel(f: Field) -> str:
    """The --help panel of a field: its concern's.

    >>> panel(field_named("cv"))
    'Audit'
    """
    return next(c.PANEL for c in ScanSettings.__bases__ if f.name in {g.name for g in fields(c)})


def check_setting(name: str, value) -> None:
    """Run the declared constraints of setting `name` on `value`.

    >>> check_setting("n_jobs", 0)
    Traceback (most recent call last):
    labelaudit.errors.UsageError: --n-jobs must not be 0; use 1 for serial, -1 for all cores
    """
    f = field_named(name)
    for check in declared(f).checks:
        check(option_name(f), value)


def validate_settings(settings: ScanSettings) -> None:
    """Refuse, before any work, settings that cannot work (UsageError names the option).

    >>> validate_settings(ScanSettings(cv=1))
    Traceback (most recent call last):
    labelaudit.errors.UsageError: --cv must be at least 2 (got 1)
    """
    for f in fields(settings):
        check_setting(f.name, getattr(settings, f.name))
    _check_model_inputs(settings)
    if settings.backend == "dask":
        from .backends import check_scheduler

        check_scheduler(settings.scheduler)
    # A Dask cluster's workers may hold GPUs that this client does not: there only the name
    # is checked, and each worker resolves the device where it trains.
    problem = device_problem(settings.device, check_here=settings.backend == "local")
    if problem:
        raise UsageError(problem)


def _check_model_inputs(settings: ScanSettings) -> None:
    """Refuse the "Your model" settings that cannot go together.

    >>> _check_model_inputs(ScanSettings(history="train.log"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    labelaudit.errors.UsageError: --history is your model's training log, read beside its ...
    """
    if settings.pred_probs is not None:
        for option in ("embeddings", "encoder"):
            if getattr(settings, option) is not None:
                raise UsageError(
                    f"--pred-probs and --{option} cannot go together: with your model's "
                    f"probabilities labelaudit trains nothing, so nothing would learn from "
                    f"--{option}; pass one of them")
    if settings.history is not None and settings.pred_probs is None:
        raise UsageError(
            "--history is your model's training log, read beside its probabilities: pass "
            "--pred-probs too (without it labelaudit trains and watches its own curves), or "
            "read the log alone with `labelaudit gap LOG`")
    if settings.embeddings is not None and settings.encoder is not None:
        raise UsageError("--embeddings and --encoder both give the vectors the embedding members "
                         "learn from; pass one of them")


def device_problem(device: str, *, check_here: bool = True) -> str | None:
    """Why torch cannot train on `device` (None when it can): a name torch does not know, or,
    with `check_here`, a GPU this machine's torch does not see.

    >>> device_problem("gpu")
    "--device must be auto, cpu, cuda, cuda:N or mps, not 'gpu'"
    >>> device_problem("cpu") is None
    True
    """
    try:
        check_setting("device", device)
    except UsageError as exc:
        return str(exc)
    if not check_here or device in ("auto", "cpu"):
        return None
    import torch

    if device == "mps":
        available = torch.backends.mps.is_available()
        seen = "no Apple GPU (MPS)"
    else:
        index = int(device.partition(":")[2] or 0)
        available = torch.cuda.is_available() and index < torch.cuda.device_count()
        seen = (f"{torch.cuda.device_count()} CUDA GPU(s)" if torch.cuda.is_available() else
                f"no CUDA GPU (torch {torch.__version__}"
                f"{', built without CUDA' if torch.version.cuda is None else ''})")
    if available:
        return None
    return f"--device {device}, but torch sees {seen} here; pass --device auto or cpu"


def auto_batch_size(n_samples: int) -> int:
    """--batch-size's default: 64; at least 8 steps per epoch for tiny datasets, about 100 for
    big ones (at most 4096).

    Tiny datasets need the extra steps: with 2 steps per epoch a model cannot memorise wrong
    labels within the epochs the gap is watched for.

    >>> [auto_batch_size(n) for n in (150, 569, 1_797, 100_000, 1_000_000)]
    [15, 56, 64, 800, 4096]
    """
    n_train = int(n_samples * 0.8)
    if n_train // 100 > 64:
        return min(4096, n_train // 100)
    return max(8, min(64, n_train // 8))


# The report's settings table and the settings the result cache's key leaves out.
SHOWN = tuple(f.name for f in fields(ScanSettings) if declared(f).shown)
RESULT_FREE = tuple(f.name for f in fields(RunSettings))


# -- where a scan writes --------------------------------------------------------------------------

OUT_SUFFIX = ".labelaudit"


def default_out(data) -> Path:
    """`scan --out`'s default: `<dataset name>.labelaudit` in the working directory, so a scan of
    another dataset (or of a corrected copy) never replaces an earlier report.

    The name is a table's stem (wine-noisy.csv -> wine-noisy) or a folder's own name.

    >>> default_out("datasets/wine-noisy.csv"), default_out("datasets/digits-noisy/")
    (PosixPath('wine-noisy.labelaudit'), PosixPath('digits-noisy.labelaudit'))
    """
    data = Path(data)
    name = data.name if data.is_dir() or not data.suffix else data.stem
    if name in ("", ".", ".."):  # "." or "..": the folder's real name
        name = data.resolve().name or "dataset"
    return Path(name + OUT_SUFFIX)
