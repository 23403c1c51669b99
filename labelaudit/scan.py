"""The end-to-end audit: load -> features -> monitored folds -> gap -> out-of-fold -> cleanlab."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from . import __version__
from .errors import UsageError
from .progress import SILENT, Progress
from .settings import ScanSettings, auto_batch_size, validate_settings



@dataclass
class ScanResult:
    dataset: object
    history: object  # DataFrame fold, epoch, train_loss, val_loss, gap
    verdict: object  # gap.GapVerdict
    audit: dict
    issues: object | None  # DataFrame, when the audit ran
    pred_probs: np.ndarray | None
    settings: ScanSettings
    timings: dict = field(default_factory=dict)
    cache: object = None  # the FoldCache the folds came from, also holding the rendered plot
    member_probs: dict | None = None  # ensemble member -> out-of-fold probabilities
    dynamics: np.ndarray | None = None  # train.training_dynamics: joins the ranking only

    def history_svg(self) -> str:
        """The loss-curve plot for the report, rendered once per history and kept in the cache.

        Rendering (and importing matplotlib) is the slowest part of a re-run from the cache.
        """
        import hashlib

        from .plot import history_svg

        digest = hashlib.sha256(self.history.to_csv(index=False).encode())
        digest.update(repr(self.verdict.to_dict()).encode())
        name = f"plot-{digest.hexdigest()[:16]}"
        svg = self.cache.get(name) if self.cache is not None else None
        if not isinstance(svg, str):
            svg = history_svg(self.history, verdict=self.verdict)
            if self.cache is not None:
                self.cache.put(name, svg)
        return svg

    def summary(self) -> dict:
        return {
            "version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "dataset": self.dataset.describe(),
            "gap": self.verdict.to_dict(),
            "audit": self.audit,
            "settings": asdict(self.settings),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def image_shift(ds) -> int:
    """Pixels of random translation while training: 2 for images above 16 pixels, else 0.

    Digits-sized images (8x8) have no room to move: a 2-pixel shift there is a quarter of the
    image.
    """
    return 2 if ds.kind == "images" and ds.inputs.shape[-1] > 16 else 0


def scan(path, settings: ScanSettings = ScanSettings(), *, progress: Progress = SILENT,
         log=lambda message: None) -> ScanResult:
    """Run the whole audit on a dataset and return its result (nothing is written).

    >>> result = scan("datasets/wine-noisy.csv", ScanSettings(audit="always"))  # doctest: +SKIP
    >>> result.audit["n_flagged"]  # doctest: +SKIP
    """
    from .cache import FoldCache, dataset_fingerprint, result_key
    from .data import load_dataset

    validate_settings(settings)
    decisions = None
    if settings.reviewed is not None:
        from .decisions import read_decisions

        decisions = read_decisions(settings.reviewed)  # refuse a bad file before training
    timings = {}
    started = time.perf_counter()
    clock = started

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    ds = load_dataset(
        path, kind=settings.kind, label_column=settings.label_column,
        text_column=settings.text_column, id_column=settings.id_column,
        image_size=settings.image_size, encoding=settings.encoding, strict=settings.strict,
        follow_symlinks=settings.follow_symlinks, progress=progress,
    )
    counts = np.bincount(ds.labels, minlength=ds.n_classes)
    if counts.max() < settings.cv:  # StratifiedKFold cannot split this at all
        raise UsageError(f"--cv {settings.cv} is more than the largest class has samples "
                         f"({counts.max()}); pass --cv {max(2, counts.max())} or fewer")
    small = [c for c, n in zip(ds.classes, counts, strict=True) if n < settings.cv]
    if small:  # recorded in summary.json too, with the other dataset warnings
        ds = replace(ds, warnings=ds.warnings + (
            f"{len(small)} class(es) have fewer samples than --cv {settings.cv} "
            f"({', '.join(small[:5])}); their samples are still scored, but consider a smaller "
            "--cv",))
    for message in ds.warnings:
        log(f"warning: {message}")
    lap("load")

    results_cache = FoldCache(
        Path(settings.cache_dir) / "results" if settings.cache_dir is not None else None,
        result_key(dataset_fingerprint(ds), settings))
    found = results_cache.get("result")
    if found is not None:
        lap("cached_result")
    else:
        found = _audit(ds, settings, progress=progress, lap=lap)
        results_cache.put("result", found)
    audit = dict(found["audit"])
    issues = found["issues"]
    if decisions is not None:
        from .decisions import mark_reviewed, reviewed_warning

        unknown = reviewed_warning(ds.ids, decisions)
        if unknown:  # on stderr, and in summary.json with the other dataset warnings
            log(f"warning: {unknown}")
            ds = replace(ds, warnings=ds.warnings + (unknown,))
    if decisions is not None and issues is not None:
        issues = mark_reviewed(issues, decisions)
        audit["n_reviewed"] = int(issues["reviewed"].sum())
        audit["n_flagged"] = int(issues["is_label_issue"].sum())
    timings["total"] = time.perf_counter() - started
    return ScanResult(dataset=ds, history=found["history"], verdict=found["verdict"], audit=audit,
                      issues=issues, pred_probs=found["pred_probs"], settings=settings,
                      timings=timings, cache=results_cache, member_probs=found["member_probs"],
                      dynamics=found["dynamics"])


def _audit(ds, settings: ScanSettings, *, progress: Progress, lap) -> dict:
    """Features -> monitored folds -> gap verdict -> (when it calls for one) the audit.

    Returns the parts of a ScanResult that depend only on the data and the result-changing
    settings, which is what the result cache keeps.
    """
    from .audit import RANK_BY, find_issues, member_weights, pool_probs
    from .cache import FoldCache, cache_key, fingerprint
    from .features import make_features
    from .gap import diagnose
    from .train import ModelSettings, fold_splits, history_frame, out_of_fold, training_dynamics

    X = make_features(ds)
    y = ds.labels
    lap("features")

    model = ModelSettings(
        kind="images" if ds.kind == "images" else "features", n_classes=ds.n_classes,
        epochs=settings.epochs, batch_size=settings.batch_size or auto_batch_size(ds.n_samples),
        lr=settings.lr, patience=settings.patience, monitor_patience=settings.monitor_patience,
        monitor_min_epochs=settings.monitor_min_epochs, shift=image_shift(ds),
        hidden=settings.hidden, device=settings.device,  # resolved where torch trains
    )
    splits = fold_splits(y, cv=settings.cv, random_state=settings.seed)
    cache = FoldCache(settings.cache_dir, cache_key(fingerprint(X, y), model, cv=settings.cv,
                                                    seed=settings.seed))
    # The monitor is its own fold 0 where it must train differently from the audit's folds:
    # - big data (above monitor_max_samples): on a subsample of fold 1's split, with the batch
    #   size of its sample size;
    # - images trained with random shifts: without them. Shifts slow the memorising of wrong
    #   labels, so a shifted network's gap barely climbs on noisy labels (1,000 MNIST images
    #   with 10% noise read over-parametrized), where an unshifted one climbs steeply within
    #   15 epochs (benchmarks/README.md, gap calibration). It watches at most
    #   image_monitor_max_samples: the calibrated regime, and all the training that a healthy
    #   image folder costs.
    # Otherwise fold 1 is the monitor.
    limits = [settings.monitor_max_samples]
    if model.shift > 0:
        limits.append(settings.image_monitor_max_samples)
    limit = min((n for n in limits if n is not None), default=None)
    subsample = limit is not None and ds.n_samples > limit
    monitor_fold = 0 if subsample or model.shift > 0 else 1
    monitor_model = replace(model, shift=0, batch_size=settings.batch_size or auto_batch_size(
        limit) if subsample else model.batch_size)
    runner = _FoldRunner(X, y, splits, model=model, monitor_model=monitor_model,
                         monitor_fold=monitor_fold, monitor_samples=limit if subsample else None,
                         settings=settings, data_kind=ds.kind, cache=cache, progress=progress)
    every_fold = ([0] if monitor_fold == 0 else []) + list(range(1, settings.cv + 1))
    if settings.audit == "always":
        # Nothing waits for the verdict: every fold starts at once, the monitor (it trains
        # longest on its data) before the others, so parallel workers stay busy.
        results = runner.run(every_fold, members=True)
        monitor_verdict = None
        lap("folds")
    else:
        results = runner.run([monitor_fold], members=False)
        monitor_verdict = diagnose(history_frame(results))
        lap("monitor")

    if settings.audit == "always":
        run_audit, reason = True, "--audit always"
    elif settings.audit == "never":
        run_audit, reason = False, "--audit never: the audit was skipped on request"
    elif monitor_verdict.steep:
        run_audit = True
        reason = (f"on the monitor fold (fold {monitor_fold}) the generalization gap "
                  f"climbs steeply (growth {monitor_verdict.growth:+.2f} of the loss scale): "
                  "suspect wrongly assigned labels")
    else:
        run_audit = False
        reason = (f"on the monitor fold (fold {monitor_fold}) the generalization gap "
                  f"does not climb steeply (regime: {monitor_verdict.regime}), so the labels are "
                  "not the first suspect; pass --audit always to audit anyway")

    issues = pred_probs = members = dynamics = None
    audit = {"ran": run_audit, "reason": reason, "n_flagged": None,
             "estimated_noise_rate": None}
    if run_audit:
        if len(results) < len(every_fold):
            results = runner.run(every_fold, members=True)
            lap("folds")
        scored = [r for r in results if r.fold > 0]
        model_name = "cnn" if ds.kind == "images" else "mlp"
        members = {model_name if name == "model" else name: probs for name, probs in
                   out_of_fold(scored, ds.n_samples, ds.n_classes).items()}
        if ds.kind == "text":
            # The network memorises TF-IDF within an epoch or two: its out-of-fold probabilities
            # were the least accurate text member's. Leaving them out of the vote and the
            # ranking, with naive Bayes in their place, raised 20 Newsgroups' F1 and AUPRC on
            # the quality benchmark (benchmarks/README.md). Its curves still diagnose the gap.
            del members[model_name]
        # The training dynamics join the ranking, accuracy-weighted like the members; they are
        # in-sample probabilities, so they never vote or suggest a label.
        dynamics = training_dynamics(scored, ds.n_samples, ds.n_classes)
        signals = members if dynamics is None else {**members, "dynamics": dynamics}
        weights = member_weights(y, signals.values())
        pred_probs = pool_probs(list(members.values()), weights[:len(members)])
        rank_probs = None if dynamics is None else pool_probs(list(signals.values()), weights)
        from cleanlab.rank import get_label_quality_scores

        evidence = {f"quality_{name}": get_label_quality_scores(y, probs, method=RANK_BY)
                    for name, probs in signals.items()}
        issues, estimates = find_issues(y, pred_probs, ids=ds.ids, classes=ds.classes,
                                        filter_by=settings.filter_by, evidence=evidence,
                                        members=members, rank_probs=rank_probs)
        estimates["members"] = list(members)
        estimates["member_weights"] = dict(zip(signals, weights, strict=True))
        audit.update(estimates)
        audit["accuracy_out_of_fold"] = float((pred_probs.argmax(1) == y).mean())
        lap("confident_learning")
    history = history_frame(results)
    if monitor_fold == 0:  # a separate monitor's verdict stands, whatever the audit mode
        verdict = monitor_verdict or diagnose(history[history["fold"] == 0])
    else:  # the verdict reads every fold there is
        verdict = diagnose(history) if len(results) > 1 else monitor_verdict
    audit["best_epochs"] = [r.best_epoch for r in results]
    return dict(history=history, verdict=verdict, audit=audit, issues=issues,
                pred_probs=pred_probs, member_probs=members, dynamics=dynamics)


class _FoldRunner:
    """Runs folds through the chosen backend, reusing and filling the fold cache.

    Finished folds are also kept in memory, so the audit after the monitor reuses the
    monitor's fold even without a cache.
    """

    def __init__(self, X, y, splits, *, model, monitor_model, monitor_fold, monitor_samples,
                 settings, data_kind, cache, progress):
        self.X, self.y, self.splits = X, y, splits
        self.model, self.monitor_model = model, monitor_model
        # The fold that trains as the monitor: 1, or 0 when it is separate; fold 0 trains on a
        # subsample of this many samples, or on all of fold 1's split when it is None.
        self.monitor_fold, self.monitor_samples = monitor_fold, monitor_samples
        self.settings, self.data_kind = settings, data_kind
        self.cache, self.progress = cache, progress
        self.done = {}  # entry name -> what this runner trained or loaded

    def _name(self, fold: int) -> str:
        """The fold's cache entry."""
        return f"monitor{self.monitor_samples or ''}" if fold == 0 else f"fold{fold}"

    def _split(self, fold: int):
        """(train, test) indices: fold 0 is fold 1's split, or a subsample of it."""
        if fold == 0 and self.monitor_samples is not None:
            from .train import monitor_split

            return monitor_split(*self.splits[0], self.monitor_samples,
                                 random_state=self.settings.seed)
        return self.splits[max(fold, 1) - 1]

    def _get(self, name):
        if name not in self.done:
            self.done[name] = self.cache.get(name)
        return self.done[name]

    def _put(self, name, value):
        self.done[name] = value
        self.cache.put(name, value)

    def run(self, folds, *, members: bool) -> list:
        from .backends import auto_jobs, execute

        n_jobs = self.settings.n_jobs or auto_jobs(len(self.y))
        results, extra, jobs = {}, {}, []
        for fold in folds:
            name = self._name(fold)
            results[fold] = self._get(name)
            extra[fold] = self._get(f"{name}-members") if members and fold > 0 else {}
            if results[fold] is None or extra[fold] is None:
                train_index, test_index = self._split(fold)
                jobs.append(dict(
                    train_index=train_index, test_index=test_index, fold=fold,
                    monitor=fold == self.monitor_fold,
                    settings=self.monitor_model if fold == 0 else self.model,
                    random_state=self.settings.seed,
                    data_kind=self.data_kind, want_model=results[fold] is None,
                    want_members=extra[fold] is None))
        for fold, result, fold_members in execute(
                self.X, self.y, jobs, backend=self.settings.backend, n_jobs=n_jobs,
                scheduler=self.settings.scheduler, progress=self.progress,
                total_epochs=self.model.epochs):
            name = self._name(fold)
            if result is not None:
                self._put(name, result)
                results[fold] = result
            if fold_members is not None:
                self._put(f"{name}-members", fold_members)
                extra[fold] = fold_members
        return [replace(results[f], member_probs=extra[f]) for f in folds]


def write_outputs(result: ScanResult, out: Path) -> dict:
    """Write issues.csv (when audited), history.csv, summary.json and report.html into `out`."""
    from .outputs import REPORT_FILES, staged, write_csv, write_json
    from .report import render_report

    started = time.perf_counter()
    summary = result.summary()
    with staged(Path(out)) as staging:
        issues_csv, history_csv, summary_json, report_html = (staging / n for n in REPORT_FILES)
        if result.issues is not None:
            write_csv(result.issues, issues_csv)
        write_csv(result.history, history_csv)
        summary["timings"]["outputs"] = round(time.perf_counter() - started, 3)
        write_json(summary_json, summary)
        report_html.write_text(render_report(result, summary), encoding="utf-8")
    return summary


def check_out_dir(data_path: Path, out: Path, *, cache: str | Path | None = None) -> None:
    """Refuse, before any work, an --out or cache folder that the scan could not use.

    --out: inside the dataset or holding it, not writable, or replacing what labelaudit did not
    write there. The cache: in the dataset, not writable, or another user's.

    >>> check_out_dir(Path("datasets/wine-noisy.csv"), Path("labelaudit-report"),
    ...               cache="labelaudit-report/cache")  # doctest: +SKIP
    """
    from .cache import check_cache
    from .outputs import REPORT_FILES, check_out, check_writable, recover

    check_out(out, inputs=[data_path], writes=REPORT_FILES)
    # A killed run's leftovers go back before the cache is written: its --out may lie moved
    # aside, the cache in it.
    if recover(out):
        check_out(out, inputs=[data_path], writes=REPORT_FILES)
    check_writable(out, option="--out", renamed=True)
    if cache is not None:
        check_cache(cache, inputs=[data_path])
