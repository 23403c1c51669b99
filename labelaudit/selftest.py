"""How far to trust the ranking on your kind of data: inject known label errors, scan, score.

`selftest` loads the user's dataset, flips exactly the share of its labels asked for
(round(rate * n) samples) with cleanlab's noise generation (`labelaudit.noise.inject_noise`,
topped up or trimmed to the exact count), writes that noisy copy into a temporary folder with
the same writer `labelaudit apply` uses (image files moved into their new class folders, tables
rewritten in their own format), runs the very same scan on it with the audit forced on, and
scores the scan's verdicts against the known flips. The input is only read; the copy is removed
afterwards.

Errors already present in the data are not known, so they count as false positives: the
precision reported is a lower bound on data that was not clean to begin with.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from .errors import UsageError
from .progress import SILENT, Progress
from .settings import ScanSettings, validate_settings

DEFAULT_SETTINGS = ScanSettings()
NOTE = ("only the injected errors are known: errors already in the data count as false "
        "positives, so precision is a lower bound unless the data was clean")


def selftest(path, *, inject: float = 0.1, settings: ScanSettings = DEFAULT_SETTINGS,
             frac_zero_noise_rates: float = 0.0, progress: Progress = SILENT,
             log=lambda message: None) -> dict:
    """Inject `inject` label errors into a copy of `path`, scan it, and score the audit.

    Returns precision, recall and F1 of ``is_label_issue``, the AUPRC of the ``label_quality``
    ranking (and of each member's own score), and the estimated against the injected noise rate.
    ``settings.seed`` drives the injection as well as the scan.

    >>> report = selftest("datasets/wine-clean.csv", inject=0.1,
    ...                   settings=ScanSettings(epochs=3, cv=3))
    >>> report["n_injected"], sorted(k for k in report if k in ("precision", "recall", "auprc"))
    (18, ['auprc', 'precision', 'recall'])
    """
    from .apply import apply_decisions
    from .data import load_dataset
    from .noise import check_seed, inject_noise
    from .scan import scan

    # First: numpy refuses such a seed inside cleanlab's noise generation, which reads as if
    # the --inject rate were at fault.
    check_seed(settings.seed)
    if not 0 < inject < 1:
        raise UsageError(f"--inject must be a rate between 0 and 1, e.g. 0.1 (got {inject})")
    if not 0 <= frac_zero_noise_rates < 1:
        raise UsageError("--frac-zero-noise-rates must be at least 0 and below 1 "
                         f"(got {frac_zero_noise_rates})")
    validate_settings(settings)
    settings = replace(settings, audit="always")
    started = time.perf_counter()
    path = Path(path)
    ds = load_dataset(
        path, kind=settings.kind, label_column=settings.label_column,
        text_column=settings.text_column, id_column=settings.id_column,
        image_size=settings.image_size, encoding=settings.encoding, strict=settings.strict,
        follow_symlinks=settings.follow_symlinks,
    )
    try:
        noisy = inject_noise(ds.labels, inject, n_classes=ds.n_classes,
                             frac_zero_noise_rates=frac_zero_noise_rates,
                             random_state=settings.seed, exact=True)
    except ValueError as exc:  # cleanlab finds no valid noise matrix for this rate
        raise UsageError(f"cannot inject {inject:.0%} label errors into {path} ({exc}); try a "
                         "smaller --inject") from None
    flipped = noisy != ds.labels
    if not flipped.any():
        raise UsageError(f"injecting {inject:.0%} into {ds.n_samples} samples flipped no label; "
                         "use a larger --inject or a larger dataset")
    log(f"selftest: flipped {int(flipped.sum())} of {ds.n_samples} labels (realised rate "
        f"{flipped.mean():.1%}, --inject {inject:g}) in a temporary copy; {path} is only read")

    import pandas as pd

    classes = np.asarray(ds.classes, dtype=object)
    decisions = pd.DataFrame({
        "id": ds.ids[flipped].astype(str), "given_label": classes[ds.labels[flipped]],
        "decision": "relabel", "new_label": classes[noisy[flipped]],
    })
    truth = dict(zip(ds.ids.astype(str), flipped, strict=True))
    with tempfile.TemporaryDirectory(prefix="labelaudit-selftest-") as tmp:
        copy = apply_decisions(path, decisions, Path(tmp) / "noisy-copy",
                               label_column=ds.label_column, id_column=settings.id_column,
                               encoding=settings.encoding)
        injected_at = time.perf_counter()
        # A table whose ids were row numbers: its copy numbers them in a column of its own.
        copy_settings = replace(settings, id_column=copy.row_column) if copy.row_column \
            else settings
        result = scan(copy.written, copy_settings, progress=progress, log=log)
    original_id = {}  # a moved image's new path -> the id it has in the user's folder
    if "new_path" in copy.changes.columns:
        original_id = dict(zip(copy.changes["new_path"], copy.changes["id"], strict=True))
    issues = result.issues
    ids = [original_id.get(str(i), str(i)) for i in issues["id"]]
    if sorted(ids) != sorted(truth):
        raise RuntimeError("labelaudit bug: the noisy copy's samples differ from the dataset's")
    y_true = np.array([truth[i] for i in ids], dtype=bool)
    report = {
        "path": str(path),
        "kind": ds.kind,
        "n_samples": ds.n_samples,
        "n_classes": ds.n_classes,
        "inject": inject,
        "frac_zero_noise_rates": frac_zero_noise_rates,
        "n_injected": int(flipped.sum()),
        "injected_rate": float(flipped.mean()),
        "n_flagged": int(result.audit["n_flagged"]),
        "estimated_noise_rate": float(result.audit["estimated_noise_rate"]),
        **score_issues(y_true, issues),
        "note": NOTE,
        "settings": asdict(settings),
        "timings": {"inject_and_copy": round(injected_at - started, 3),
                    "scan": round(result.timings["total"], 3),
                    "total": round(time.perf_counter() - started, 3)},
    }
    return report


def score_issues(is_noisy, issues) -> dict:
    """Score an issues table against the truth (aligned row by row with `issues`).

    Precision, recall and F1 of ``is_label_issue``; AUPRC of low ``label_quality`` (sklearn's
    average precision, whose chance level is the noise rate); and the AUPRC of every evidence
    column ``quality_<member>``.

    >>> import pandas as pd
    >>> issues = pd.DataFrame({"is_label_issue": [True, False, False],
    ...                        "label_quality": [0.1, 0.9, 0.2]})
    >>> score_issues([True, False, False], issues)["auprc"]
    1.0
    """
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support

    is_noisy = np.asarray(is_noisy, dtype=bool)
    flagged = issues["is_label_issue"].to_numpy(dtype=bool)
    precision, recall, f1, _ = precision_recall_fscore_support(
        is_noisy, flagged, average="binary", zero_division=0)
    scores = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
              "auprc": float(average_precision_score(is_noisy, -issues["label_quality"])),
              "auprc_chance": float(is_noisy.mean())}
    members = {column.removeprefix("quality_"): float(average_precision_score(
        is_noisy, -issues[column].to_numpy(dtype=float)))
        for column in issues.columns if column.startswith("quality_")}
    if members:
        scores["member_auprc"] = members
    return scores
