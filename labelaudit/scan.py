"""The end-to-end audit: load -> features -> monitored folds -> gap -> out-of-fold -> cleanlab."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from . import __version__
from .errors import UsageError
from .progress import SILENT, Progress, folds_named
from .settings import ScanSettings, auto_batch_size, validate_settings


@dataclass
class ScanResult:
    """What `scan` found: the dataset, the gap's history and verdict, and the audit's results."""

    dataset: object
    history: object  # DataFrame fold, epoch, train_loss, val_loss, gap
    verdict: object  # gap.GapVerdict
    audit: dict  # summary.json's audit
    issues: object | None  # DataFrame, when the audit ran
    pred_probs: np.ndarray | None  # the voting members' pool, when the audit ran
    settings: ScanSettings
    timings: dict = field(default_factory=dict)
    cache: object = None  # the FoldCache the folds came from, also holding the rendered plot
    member_probs: dict | None = None  # voting member -> its out-of-fold probabilities
    dynamics: np.ndarray | None = None  # train.training_dynamics: a member that only ranks

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
            svg = history_svg(self.history, verdict=self.verdict,
                              verdict_fold=verdict_fold(self.history))
            if self.cache is not None:
                self.cache.put(name, svg)
        return svg

    def summary(self) -> dict:
        """summary.json's document (docs/outputs.md)."""
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

    >>> result = scan("datasets/wine-noisy.csv", ScanSettings(
    ...     id_column="sample_id", audit="always", cv=2, epochs=2))
    >>> result.audit["ran"], len(result.issues) == result.dataset.n_samples
    (True, True)
    """
    validate_settings(settings)
    decisions = _read_reviewed(settings.reviewed)  # refuse a bad file before training
    user_log = _read_user_log(settings)  # refuse a bad --history before loading the data
    clock = _Clock()
    ds = _load(path, settings, progress=progress, log=log)
    clock.lap("load")
    found, cache = _audit_or_cached(ds, settings, user_log, progress=progress, lap=clock.lap)
    ds, issues, audit = _take_out_reviewed(ds, found, decisions, log=log)
    audit["source"] = "pred_probs" if settings.pred_probs is not None else "labelaudit"
    return ScanResult(dataset=ds, history=found["history"], verdict=found["verdict"], audit=audit,
                      issues=issues, pred_probs=found["pred_probs"], settings=settings,
                      timings=clock.total(), cache=cache, member_probs=found["member_probs"],
                      dynamics=found["dynamics"])


class _Clock:
    """Seconds per named step, each from the end of the one before: ScanResult.timings."""

    def __init__(self):
        self.started = self.last = time.perf_counter()
        self.timings = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name], self.last = now - self.last, now

    def total(self) -> dict:
        self.timings["total"] = time.perf_counter() - self.started
        return self.timings


def _read_reviewed(path):
    """--reviewed's decisions, checked; None without it."""
    if path is None:
        return None
    from .decisions import read_decisions

    return read_decisions(path)


def _read_user_log(settings: ScanSettings):
    """--history's loss table (None without it), read before any work, beside a --pred-probs
    file that is checked to exist (validate_settings refuses the combinations that cannot
    work)."""
    if settings.pred_probs is not None:
        from .inputs import check_file

        check_file(settings.pred_probs, "--pred-probs")
    if settings.history is None:
        return None
    from .logs import read_log

    return read_log(settings.history)


def _load(path, settings: ScanSettings, *, progress: Progress, log):
    """The dataset, refused when --cv cannot split it, warned about when a class is that small
    (with --pred-probs nothing is split)."""
    from .data import load_dataset

    ds = load_dataset(
        path, kind=settings.kind, label_column=settings.label_column,
        text_column=settings.text_column, id_column=settings.id_column,
        image_size=settings.image_size, encoding=settings.encoding, strict=settings.strict,
        follow_symlinks=settings.follow_symlinks, progress=progress,
    )
    if settings.pred_probs is None:
        ds = _check_cv(ds, settings.cv)
    for message in ds.warnings:
        log(f"warning: {message}")
    return ds


def _check_cv(ds, cv: int):
    """`ds`, refused when `cv` folds cannot split it, with a warning for classes that small."""
    counts = np.bincount(ds.labels, minlength=ds.n_classes)
    if counts.max() < cv:  # StratifiedKFold cannot split this at all
        raise UsageError(f"--cv {cv} is more than the largest class has samples "
                         f"({counts.max()}); pass --cv {max(2, counts.max())} or fewer")
    small = [c for c, n in zip(ds.classes, counts, strict=True) if n < cv]
    if small:  # recorded in summary.json too, with the other dataset warnings
        ds = replace(ds, warnings=ds.warnings + (
            f"{len(small)} class(es) have fewer samples than --cv {cv} "
            f"({', '.join(small[:5])}); their samples are still scored, but consider a smaller "
            "--cv",))
    return ds


def _audit_or_cached(ds, settings: ScanSettings, user_log=None, *, progress: Progress, lap):
    """(`_audit`'s result, or with --pred-probs `_audit_pred_probs`'s, the result cache): kept
    from an earlier scan of the same data, files and result-changing settings, else computed
    and kept."""
    from .cache import FoldCache, dataset_fingerprint, result_key

    cache = FoldCache(
        Path(settings.cache_dir) / "results" if settings.cache_dir is not None else None,
        result_key(dataset_fingerprint(ds), settings))
    found = cache.get("result")
    if found is not None:
        progress.stage("reusing the result of an earlier scan of the same data and settings")
        lap("cached_result")
    else:
        found = (_audit_pred_probs(ds, settings, user_log, progress=progress, lap=lap)
                 if settings.pred_probs is not None else
                 _audit(ds, settings, progress=progress, lap=lap))
        cache.put("result", found)
    return found, cache


def _take_out_reviewed(ds, found: dict, decisions, *, log):
    """(dataset, issues, audit) with --reviewed's samples out of the list to review, and a
    warning, on stderr and in summary.json, for decisions naming ids not in the data."""
    from .decisions import mark_reviewed, reviewed_warning, with_moved_paths

    audit, issues = dict(found["audit"]), found["issues"]
    if decisions is None:
        _hint_change_log(ds, issues, log=log)
        return ds, issues, audit
    if ds.kind == "images":
        decisions = with_moved_paths(decisions, ds.ids)
    unknown = reviewed_warning(ds.ids, decisions)
    if unknown:
        log(f"warning: {unknown}")
        ds = replace(ds, warnings=ds.warnings + (unknown,))
    if issues is not None:
        issues = mark_reviewed(issues, decisions)
        audit["n_reviewed"] = int(issues["reviewed"].sum())
        audit["n_flagged"] = int(issues["is_label_issue"].sum())
    return ds, issues, audit


def _hint_change_log(ds, issues, *, log) -> None:
    """Point to the change log that `apply` left in a corrected image folder, whose reviewed
    samples an audit would otherwise list again."""
    from .decisions import CHANGES_FILE, is_change_log

    log_path = Path(ds.path) / CHANGES_FILE
    if issues is not None and ds.kind == "images" and is_change_log(log_path):
        log(f"note: {log_path} is the change log of `labelaudit apply`; pass --reviewed "
            f"{log_path} to leave the samples reviewed before out of the list")


def _audit(ds, settings: ScanSettings, *, progress: Progress, lap) -> dict:
    """Plan the monitor -> watch the gap -> decide -> (when decided) audit the labels.

    Returns the parts of a ScanResult that depend only on the data and the result-changing
    settings, which is what the result cache keeps.
    """
    from .features import make_features

    X = make_features(ds)
    lap("features")
    vectors = _read_vectors(ds, settings)  # a bad --embeddings file is refused before training
    runner = _plan_folds(ds, X, settings, progress=progress)
    if settings.audit == "always":
        runner.use_embeddings(_embeddings(ds, settings, vectors, progress=progress, lap=lap))
    progress.stage(f"training all {len(runner.every_fold)} folds (--audit always)"
                   if settings.audit == "always" else
                   f"watching the generalization gap on fold {runner.monitor.fold}")
    results, monitor_verdict = _watch_gap(runner, settings.audit, lap=lap)
    ran, reason = _decide(settings.audit, monitor_verdict, runner.monitor.fold)
    rest = [f for f in runner.every_fold if f not in {r.fold for r in results}]
    if settings.audit == "auto":
        progress.stage(f"the curves show wrong labels: auditing {folds_named(rest)}"
                       if ran and rest else "the curves show wrong labels: auditing" if ran else
                       "no sign of wrong labels in the curves: no audit (--audit always "
                       "audits anyway)")
    audit = {"ran": ran, "reason": reason, "n_flagged": None, "estimated_noise_rate": None}
    found = dict(issues=None, pred_probs=None, member_probs=None, dynamics=None)
    if ran:
        if settings.audit != "always":  # only now are the vectors needed: embed them
            runner.use_embeddings(_embeddings(ds, settings, vectors, progress=progress, lap=lap))
        if len(results) < len(runner.every_fold):
            results = runner.run(runner.every_fold, members=True)
            lap("folds")
        progress.stage("confident learning: ranking the likely label errors")
        found, estimates = _audit_labels(ds, results, filter_by=settings.filter_by,
                                         embedded=runner.embeddings is not None)
        if "gate" in estimates:
            progress.stage(estimates["gate"])
        audit.update(estimates)
        lap("confident_learning")
    history, verdict = _read_gap(results, monitor_verdict, monitor_fold=runner.monitor.fold,
                                 n_classes=ds.n_classes)
    audit["best_epochs"] = [r.best_epoch for r in results]
    return dict(history=history, verdict=verdict, audit=audit, **found)


def _read_vectors(ds, settings: ScanSettings):
    """--embeddings' vectors in dataset order (None without it); --encoder is checked here."""
    if settings.encoder is not None:
        from .encoders import check_encoder

        check_encoder(settings.encoder, ds.kind)
    if settings.embeddings is None:
        return None
    from .inputs import read_embeddings

    return read_embeddings(settings.embeddings, ds)


def _embeddings(ds, settings: ScanSettings, vectors, *, progress: Progress, lap):
    """The vectors the embedding members learn from: --embeddings' (`vectors`), --encoder's
    (embedded now, or read from the cache), or None."""
    if vectors is not None or settings.encoder is None:
        return vectors
    from .encoders import embed

    vectors = embed(ds, settings.encoder, device=settings.device, cache_dir=settings.cache_dir,
                    progress=progress)
    lap("embeddings")
    return vectors


@dataclass(frozen=True)
class _Monitor:
    """The fold that watches the gap: 1, or 0 where it trains apart from the audit's folds."""

    fold: int
    model: object  # train.ModelSettings
    samples: int | None  # fold 0 trains on a subsample of this size; None: fold 1's whole split


def _plan_monitor(ds, model, settings: ScanSettings) -> _Monitor:
    """Fold 0 for big data (a subsample of fold 1's split, at its own batch size) and for
    shifted images (trained unshifted: shifts slow the memorising of wrong labels, so the gap of
    a shifted network barely climbs, docs/gap-rule.md); otherwise fold 1."""
    limits = [settings.monitor_max_samples]
    if model.shift > 0:
        limits.append(settings.image_monitor_max_samples)
    limit = min((n for n in limits if n is not None), default=None)
    subsample = limit is not None and ds.n_samples > limit
    batch_size = (settings.batch_size or auto_batch_size(limit)) if subsample \
        else model.batch_size
    return _Monitor(fold=0 if subsample or model.shift > 0 else 1,
                    model=replace(model, shift=0, batch_size=batch_size),
                    samples=limit if subsample else None)


def _plan_folds(ds, X, settings: ScanSettings, *, progress: Progress) -> _FoldRunner:
    """The audit's folds and the monitor's, ready to train, with their fold cache."""
    from .cache import FoldCache, cache_key, fingerprint
    from .train import ModelSettings, fold_splits

    model = ModelSettings.of(
        settings, kind="images" if ds.kind == "images" else "features", n_classes=ds.n_classes,
        batch_size=settings.batch_size or auto_batch_size(ds.n_samples), shift=image_shift(ds))
    cache = FoldCache(settings.cache_dir, cache_key(fingerprint(X, ds.labels), model,
                                                    cv=settings.cv, seed=settings.seed))
    return _FoldRunner(X, ds.labels, fold_splits(ds.labels, cv=settings.cv,
                                                 random_state=settings.seed),
                       model=model, monitor=_plan_monitor(ds, model, settings),
                       settings=settings, data_kind=ds.kind, cache=cache, progress=progress)


def _watch_gap(runner: _FoldRunner, mode: str, *, lap):
    """(fold results, the monitor's verdict): the monitor alone, or with --audit always every
    fold at once and no verdict yet."""
    from .gap import diagnose
    from .train import history_frame

    if mode == "always":
        # Nothing waits for the verdict: every fold starts at once, the monitor (it trains
        # longest on its data) first, so parallel workers stay busy.
        results = runner.run(runner.every_fold, members=True)
        lap("folds")
        return results, None
    results = runner.run([runner.monitor.fold], members=False)
    lap("monitor")
    return results, diagnose(history_frame(results), n_classes=runner.model.n_classes)


def verdict_fold(history) -> int:
    """The fold whose curves gave a scan's verdict: 0, the separate monitor, when it trained,
    else 1."""
    return 0 if len(history) and (history["fold"] == 0).any() else 1


def _decide(mode: str, verdict, monitor_fold: int, *, where: str | None = None
            ) -> tuple[bool, str]:
    """Whether the labels are audited, and why: summary.json's audit.ran and audit.reason.

    `where` says whose curves the verdict read (default: the monitor fold's).
    """
    if mode == "always":
        return True, "--audit always"
    if mode == "never":
        return False, "--audit never: the audit was skipped on request"
    where = where or f"on the monitor fold (fold {monitor_fold}) the generalization gap"
    if verdict.steep:
        return True, f"{where} {_steep_because(verdict)}: suspect wrongly assigned labels"
    return False, (f"{where} does not climb steeply (regime: {verdict.regime}), so the labels "
                   "are not the first suspect; pass --audit always to audit anyway")


def _steep_because(verdict) -> str:
    """What made the verdict steep: the gap's climb, or (the verdict's own rule sentence) the
    per-sample curves behind it."""
    if verdict.steep_by == "gap":
        return f"climbs steeply (growth {verdict.growth:+.2f} of the loss scale)"
    rule = next(line for line in reversed(verdict.evidence) if line.startswith("rule: "))
    return f"grows by {verdict.growth:+.2f} of the loss scale, and " + rule.removeprefix("rule: ")


def _audit_labels(ds, results: list, *, filter_by: str, embedded: bool = False):
    """Confident learning on the audit folds' ensemble (train.ENSEMBLE's roles for the kind;
    with `embedded`, train.EMBEDDED's too, as far as audit.gate_members lets them in).

    Returns (the ScanResult parts, summary.json's audit estimates).
    """
    from .audit import audit_ensemble
    from .train import EMBEDDED, ENSEMBLE, RANK, VOTE, network_of, out_of_fold, training_dynamics

    scored = [r for r in results if r.fold > 0]
    probs = out_of_fold(scored, ds.n_samples, ds.n_classes, network=network_of(ds.kind))
    dynamics = training_dynamics(scored, ds.n_samples, ds.n_classes)
    if dynamics is not None:
        probs["dynamics"] = dynamics
    roles = {**ENSEMBLE[ds.kind], **(EMBEDDED if embedded else {})}
    members = {name: probs[name] for name in roles if name in probs}  # in ENSEMBLE's order
    gate = _gate(ds, members, roles) if embedded else None
    if gate is not None:
        members = {name: p for name, p in members.items() if name not in gate.left_out}
    votes, ranks = ([name for name in members if role in roles[name]] for role in (VOTE, RANK))
    issues, estimates, pred_probs = audit_ensemble(
        ds.labels, members, votes=votes, ranks=ranks, ids=ds.ids, classes=ds.classes,
        filter_by=filter_by)
    if gate is not None:
        estimates.update(member_accuracy=gate.accuracy, left_out=gate.left_out, gate=gate.note)
    return dict(issues=issues, pred_probs=pred_probs, dynamics=dynamics,
                member_probs={name: probs[name] for name in votes}), estimates


def _gate(ds, members: dict, roles: dict):
    """audit.gate_members on the members that could vote or rank; the training dynamics
    follow the network."""
    from .audit import gate_members
    from .train import EMBEDDED, RANK, VOTE, network_of

    candidates = {name: p for name, p in members.items() if roles[name] & {VOTE, RANK}}
    return gate_members(ds.labels, candidates, embedded=[n for n in candidates if n in EMBEDDED],
                        follows={"dynamics": network_of(ds.kind)})


def _read_gap(results: list, monitor_verdict, *, monitor_fold: int, n_classes: int):
    """(history, verdict): the run's one verdict is the monitor fold's, in every audit mode.

    It is the verdict that decides `--audit auto` and the one the gap rule was calibrated on
    (docs/gap-rule.md), so the terminal, summary.json, the report and the audit's reason all
    show the same one; the other folds' curves are drawn, never given a verdict of their own.
    Under `--audit always` nothing decided on it, and it is read from the monitor's curves.
    """
    from .gap import diagnose, for_scan
    from .train import history_frame

    history = history_frame(results)
    verdict = monitor_verdict or diagnose(history[history["fold"] == monitor_fold],
                                          n_classes=n_classes)
    return history, for_scan(verdict)


class _FoldRunner:
    """Runs folds through the chosen backend, reusing and filling the fold cache.

    Finished folds are also kept in memory, so the audit after the monitor reuses the
    monitor's fold even without a cache.
    """

    def __init__(self, X, y, splits, *, model, monitor: _Monitor, settings, data_kind, cache,
                 progress):
        self.X, self.y, self.splits = X, y, splits
        self.model, self.monitor = model, monitor
        self.settings, self.data_kind = settings, data_kind
        self.cache, self.progress = cache, progress
        self.done = {}  # entry name -> what this runner trained or loaded
        # The monitor first: it trains longest on its data.
        self.every_fold = ([0] if monitor.fold == 0 else []) + list(range(1, len(splits) + 1))
        self.embeddings, self._vectors_tag = None, None  # see use_embeddings

    def use_embeddings(self, vectors) -> None:
        """From now on, fit train.EMBEDDING_MEMBERS on `vectors` (n_samples, d) in the audit
        folds; None: no such members."""
        from .cache import fingerprint

        self.embeddings = vectors
        # Their probabilities are cached apart from the other members', under the vectors'
        # fingerprint: the network and the other members are reused whatever the vectors.
        self._vectors_tag = None if vectors is None else fingerprint(vectors, self.y)[:16]

    def _name(self, fold: int) -> str:
        """The fold's cache entry."""
        return f"monitor{self.monitor.samples or ''}" if fold == 0 else f"fold{fold}"

    def _split(self, fold: int):
        """(train, test) indices: fold 0 is fold 1's split, or a subsample of it."""
        if fold == 0 and self.monitor.samples is not None:
            from .train import monitor_split

            return monitor_split(*self.splits[0], self.monitor.samples,
                                 random_state=self.settings.seed)
        return self.splits[max(fold, 1) - 1]

    def _get(self, name):
        if name not in self.done:
            self.done[name] = self.cache.get(name)
        return self.done[name]

    def _put(self, name, value):
        self.done[name] = value
        self.cache.put(name, value)

    def _job(self, fold: int, *, want_model: bool, want_members: bool,
             want_embeddings: bool) -> dict:
        """train.run_fold's arguments for `fold`, but the data."""
        train_index, test_index = self._split(fold)
        return dict(train_index=train_index, test_index=test_index, fold=fold,
                    monitor=fold == self.monitor.fold,
                    settings=self.monitor.model if fold == 0 else self.model,
                    random_state=self.settings.seed, data_kind=self.data_kind,
                    want_model=want_model, want_members=want_members,
                    want_embeddings=want_embeddings)

    def _member_entries(self, fold: int) -> tuple[str, str]:
        """The cache entries of a fold's members: the kind's own, and the embedding members'."""
        name = self._name(fold)
        return f"{name}-members", f"{name}-embeddings-{self._vectors_tag}"

    def _cached_members(self, fold: int, members: bool) -> tuple[dict | None, dict | None]:
        """(the kind's own members', the embedding members') probabilities for `fold` from
        memory or the cache: {} where none are wanted, None where they must be fitted."""
        if not members or fold == 0:
            return {}, {}
        own, embedded = self._member_entries(fold)
        return self._get(own), self._get(embedded) if self.embeddings is not None else {}

    def run(self, folds, *, members: bool) -> list:
        """Each fold's FoldResult, with its scikit-learn members' probabilities when `members`;
        only what neither memory nor the cache holds trains."""
        from .backends import auto_jobs, execute

        results, own, embedded, jobs = {}, {}, {}, []
        for fold in folds:
            results[fold] = self._get(self._name(fold))
            own[fold], embedded[fold] = self._cached_members(fold, members)
            if any(part is None for part in (results[fold], own[fold], embedded[fold])):
                jobs.append(self._job(fold, want_model=results[fold] is None,
                                      want_members=own[fold] is None,
                                      want_embeddings=embedded[fold] is None))
        for fold, result, fitted in execute(
                self.X, self.y, jobs, backend=self.settings.backend,
                n_jobs=self.settings.n_jobs or auto_jobs(len(self.y)),
                scheduler=self.settings.scheduler, progress=self.progress,
                total_epochs=self.model.epochs, embeddings=self.embeddings):
            if result is not None:
                self._put(self._name(fold), result)
                results[fold] = result
            if fitted is not None:
                self._keep_members(fold, fitted, own, embedded)
        return [replace(results[f], member_probs={**own[f], **embedded[f]}) for f in folds]

    def _keep_members(self, fold: int, fitted: dict, own: dict, embedded: dict) -> None:
        """Split a fold's fitted members into the entries that were missing, and keep them."""
        from .train import EMBEDDING_MEMBERS

        for entry, parts, ours in zip(self._member_entries(fold), (own, embedded), (False, True),
                                      strict=True):
            if parts[fold] is None:
                parts[fold] = {n: p for n, p in fitted.items() if (n in EMBEDDING_MEMBERS) == ours}
                self._put(entry, parts[fold])


# -- --pred-probs: your model's probabilities, audited without training ---------------------------

# The ensemble's one member with --pred-probs (it votes and ranks) and the gap verdict's regime
# when no --history came with it.
USER_MEMBER = "pred_probs"
NO_CURVES = "no-curves"
NO_CURVES_ADVICE = (
    "No training log came with your model's probabilities, so no gap was read: the curves "
    "cannot say whether wrong labels are the first suspect. The audit ranks your model's "
    "probabilities regardless; pass --history with its training log (any format `labelaudit "
    "gap` reads) for a verdict.")
# `labelaudit gap`'s steep advice sends the reader to a scan; in a scan the ranking is here.
YOUR_LOG_STEEP_ADVICE = (
    "The gap of your model is climbing steeply: suspect the dataset, above all wrongly assigned "
    "labels. Review the flagged samples in report.html, most likely errors first (after --audit "
    "never, scan again without it to rank them).")


def _audit_pred_probs(ds, settings: ScanSettings, user_log, *, progress: Progress,
                      lap) -> dict:
    """Audit the labels with your model's probabilities: nothing trains, and your training log
    (when given) gives the gap verdict, with the advice for your model (gap.ADVICE).

    Returns what `_audit` returns: the parts of a ScanResult that the result cache keeps.
    """
    from .audit import audit_ensemble
    from .inputs import read_pred_probs

    progress.stage(f"reading your model's probabilities (--pred-probs {settings.pred_probs})")
    probs = read_pred_probs(settings.pred_probs, ds)
    lap("pred_probs")
    history, verdict = _user_gap(user_log, n_classes=ds.n_classes)
    ran, reason = _decide_pred_probs(settings, verdict)
    audit = {"ran": ran, "reason": reason, "n_flagged": None, "estimated_noise_rate": None}
    found = dict(issues=None, pred_probs=None, member_probs=None, dynamics=None)
    if ran:
        progress.stage("confident learning: ranking the likely label errors")
        members = {USER_MEMBER: probs}
        issues, estimates, pooled = audit_ensemble(
            ds.labels, members, votes=[USER_MEMBER], ranks=[USER_MEMBER], ids=ds.ids,
            classes=ds.classes, filter_by=settings.filter_by)
        audit.update(estimates)
        found = dict(issues=issues, pred_probs=pooled, member_probs=members, dynamics=None)
        lap("confident_learning")
    audit["best_epochs"] = []  # nothing trained
    return dict(history=history, verdict=verdict, audit=audit, **found)


def _user_gap(user_log, *, n_classes: int):
    """(history, verdict) of your training log; without one an empty history and the
    no-curves verdict. The scale floor for `n_classes` applies as in every scan."""
    from .gap import GapVerdict, diagnose, history_frame

    if user_log is None:
        return history_frame([]), GapVerdict(
            regime=NO_CURVES, steep=False, slope=None, slope_low=None, slope_high=None,
            growth=None, climb_start_epoch=None, best_val_epoch=None, epochs=0, scale=None,
            advice=NO_CURVES_ADVICE, evidence=[
                "no loss curves: --pred-probs came without --history, and labelaudit trained "
                "nothing"])
    history = history_frame(user_log)
    verdict = diagnose(history, n_classes=n_classes)
    if verdict.regime == "steep-climb":
        verdict = replace(verdict, advice=YOUR_LOG_STEEP_ADVICE)
    return history, verdict


def _decide_pred_probs(settings: ScanSettings, verdict) -> tuple[bool, str]:
    """`_decide` for your model: its training log's verdict decides --audit auto; without a
    log the probabilities you brought are audited anyway."""
    if settings.audit == "auto" and verdict.regime == NO_CURVES:
        return True, ("--pred-probs without --history: no loss curves to read, so your model's "
                      "probabilities are audited anyway; pass --history with its training log "
                      "to let the gap decide")
    # No path: a result reused from the cache may have read the same log under another name.
    return _decide(settings.audit, verdict, 0, where=(
        "in your model's training log (--history) the generalization gap"))


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
    ...               cache="labelaudit-report/cache")
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
