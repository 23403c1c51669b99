"""Run fold jobs: in this process, in parallel processes (joblib), or on a Dask cluster.

Every backend runs the same function, `train.run_fold`, with the same arguments, so the results
do not depend on where a fold ran (up to float rounding across torch thread counts).
"""

from __future__ import annotations

import os
import re

from .errors import UsageError
from .settings import check_setting

SCHEDULER_ENV = "LABELAUDIT_DASK_SCHEDULER"
# distributed's comm schemes. inproc addresses (ip/pid/n) only name a scheduler in this process.
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]@]+):(?P<port>\d{1,5})")
_INPROC = re.compile(r"inproc://[^\s/]+/\d+/\d+")


def execute(X, y, jobs: list[dict], *, backend: str = "local", n_jobs: int = 1,
            scheduler: str | None = None, progress=None, total_epochs: int = 0,
            embeddings=None):
    """Yield run_fold's (fold, result, members) for each job, in completion order; the
    `embeddings` (the user's vectors, or None) travel with X."""
    from .train import run_fold

    if not jobs:
        return
    if backend == "dask":
        yield from _on_dask(X, y, jobs, scheduler=scheduler, progress=progress,
                            embeddings=embeddings)
        return
    check_setting("backend", backend)  # a library caller skips validate_settings
    n_jobs = _effective_jobs(n_jobs, len(jobs))
    if n_jobs == 1:
        for job in jobs:
            bar = (progress.task(f"fold {job['fold']}", total=total_epochs)
                   if progress is not None and job["want_model"] else None)
            out = run_fold(X, y, **job, embeddings=embeddings,
                           on_epoch=lambda *_, step=bar: step and step())
            if bar is not None:
                bar.done(stopped_note(out[1], total_epochs))
            yield out
        return
    from joblib import Parallel, delayed

    advance = progress.task("folds", total=len(jobs)) if progress is not None else None
    parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")
    # Each worker trains with one torch thread (train_fold's default): processes, not
    # threads, share out the cores, so the two levels of parallelism never fight.
    for out in parallel(delayed(run_fold)(X, y, **job, embeddings=embeddings) for job in jobs):
        if advance:
            advance()
        yield out


def stopped_note(result, total_epochs: int) -> str | None:
    """What a fold bar says when its fold stopped before `total_epochs` (early stopping).

    >>> from types import SimpleNamespace
    >>> stopped_note(SimpleNamespace(history=[{}] * 19, best_epoch=11), 30)
    'stopped at epoch 19, best 11'
    """
    if result is None or len(result.history) >= total_epochs:
        return None
    return f"stopped at epoch {len(result.history)}, best {result.best_epoch}"


PARALLEL_FROM = 5_000  # samples; below this a fold trains faster than a worker process starts


def auto_jobs(n_samples: int) -> int:
    """The default --n-jobs: every core (joblib's count, which respects CPU limits) from
    PARALLEL_FROM samples up, else 1.

    >>> auto_jobs(100)
    1
    """
    from joblib import cpu_count

    return cpu_count() if n_samples >= PARALLEL_FROM else 1


def _effective_jobs(n_jobs: int, n_tasks: int) -> int:
    check_setting("n_jobs", n_jobs)
    from joblib import cpu_count

    cores = cpu_count()
    wanted = cores + 1 + n_jobs if n_jobs < 0 else n_jobs
    return max(1, min(wanted, n_tasks))


def check_scheduler(scheduler: str | None) -> str:
    """The Dask scheduler address to use (`scheduler`, else $LABELAUDIT_DASK_SCHEDULER), checked.

    Only its shape is checked, scheme://host:port or host:port, so a typo is refused at once
    instead of after distributed's connection timeouts; nothing is contacted.

    >>> check_scheduler("tcp://scheduler:8786")
    'tcp://scheduler:8786'
    """
    address = scheduler if scheduler is not None else os.environ.get(SCHEDULER_ENV)
    name = "--scheduler" if scheduler is not None else SCHEDULER_ENV
    if address is None or (scheduler is None and not address.strip()):
        raise UsageError(f"--backend dask needs --scheduler ADDRESS (or {SCHEDULER_ENV}), e.g. "
                         "--scheduler tcp://scheduler:8786")
    if _INPROC.fullmatch(address):
        return address
    scheme, sep, rest = address.rpartition("://")
    match = _HOST_PORT.fullmatch(rest)
    if (sep and scheme not in SCHEDULER_SCHEMES) or match is None \
            or not 1 <= int(match["port"]) <= 65535:
        raise UsageError(f"{name} must be a Dask scheduler address, scheme://host:port or "
                         f"host:port (e.g. tcp://scheduler:8786; schemes: "
                         f"{', '.join(SCHEDULER_SCHEMES)}), not {address!r}")
    return address


def _unreachable(address: str, exc: BaseException, *, lost: bool = False) -> UsageError:
    what = "lost the Dask scheduler at" if lost else "cannot reach the Dask scheduler at"
    return UsageError(f"{what} {address} ({type(exc).__name__}: {exc}); check the address and "
                      "that the scheduler and its workers are running")


def _on_dask(X, y, jobs, *, scheduler, progress, embeddings=None):
    # Before importing distributed or connecting, so a typo costs no connection timeouts.
    address = check_scheduler(scheduler)
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UsageError("--backend dask needs Dask: pip install 'labelaudit[dask]'") from None
    from .train import run_fold

    try:
        client = Client(address, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise _unreachable(address, exc) from None
    advance = progress.task("folds on dask", total=len(jobs)) if progress is not None else None
    try:
        # The data travels to the workers once, not once per fold.
        try:
            X_remote, y_remote, *E_remote = client.scatter(
                [X, y] + ([] if embeddings is None else [embeddings]), broadcast=True)
        except (OSError, TimeoutError) as exc:
            raise _unreachable(address, exc, lost=True) from None
        futures = [client.submit(run_fold, X_remote, y_remote, **job, n_threads=1, pure=False,
                                 embeddings=E_remote[0] if E_remote else None, retries=2,
                                 key=f"labelaudit-fold-{job['fold']}-{os.urandom(4).hex()}")
                   for job in jobs]
        for future in as_completed(futures, loop=client.loop):
            out = future.result()
            if advance:
                advance()
            yield out
    finally:
        client.close()
