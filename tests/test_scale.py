"""Scale-out paths: parallel folds, the fold cache, and a real Dask LocalCluster."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from labelaudit.cli import app
from labelaudit.data import read_table
from labelaudit.scan import ScanSettings, auto_batch_size, scan

runner = CliRunner()


def _same_result(a, b):
    """Same flags, same ranking, same probabilities (up to float rounding across threads)."""
    pd.testing.assert_frame_equal(a.issues[["id", "given_label", "suggested_label",
                                            "is_label_issue", "rank"]],
                                  b.issues[["id", "given_label", "suggested_label",
                                            "is_label_issue", "rank"]])
    np.testing.assert_allclose(a.pred_probs, b.pred_probs, atol=1e-4)
    pd.testing.assert_frame_equal(a.history, b.history, atol=1e-4)


def test_parallel_folds_match_serial(table_csv):
    settings = ScanSettings(epochs=5, cv=3, audit="always")
    serial = scan(table_csv, settings)
    parallel = scan(table_csv, replace(settings, n_jobs=2))
    _same_result(serial, parallel)


def test_cache_reuses_folds_and_resumes(tmp_path, table_csv, monkeypatch):
    from labelaudit import train

    cache = tmp_path / "cache"
    settings = ScanSettings(epochs=30, cv=3, audit="always", cache_dir=str(cache))
    first = scan(table_csv, settings)
    entries = sorted(p.name for p in cache.rglob("*.joblib") if p.parent.parent != cache /
                     "results")
    assert entries == sorted([f"fold{k}.joblib" for k in (1, 2, 3)]
                             + [f"fold{k}-members.joblib" for k in (1, 2, 3)])

    # Count what trains from here on (the scan runs its folds in this process: 150 rows).
    trained = []
    real_train_fold, real_fit_members = train.train_fold, train.fit_members
    monkeypatch.setattr(train, "train_fold", lambda *a, **k: trained.append(
        ("model", k["fold"])) or real_train_fold(*a, **k))
    monkeypatch.setattr(train, "fit_members", lambda *a, **k: trained.append(
        ("members", k["random_state"])) or real_fit_members(*a, **k))

    # Another threshold and top-k: no fold trains again.
    again = scan(table_csv, replace(settings, filter_by="both", top_k=5))
    assert trained == []
    np.testing.assert_array_equal(first.pred_probs, again.pred_probs)

    # An interrupted scan resumes: it finished folds 1 and 3 and wrote no result.
    next(cache.rglob("fold2.joblib")).unlink()
    shutil.rmtree(cache / "results")
    resumed = scan(table_csv, settings)
    assert trained == [("model", 2)]
    _same_result(first, resumed)
    assert len(list(cache.rglob("fold2.joblib"))) == 1

    # Settings that change the model use another key.
    scan(table_csv, replace(settings, epochs=6))
    assert len([p for p in cache.iterdir() if p.is_dir() and p.name != "results"]) == 2


def test_a_cached_result_loads_without_the_heavy_libraries(tmp_path, table_csv):
    import subprocess
    import sys

    settings = ScanSettings(epochs=3, cv=3, audit="always", cache_dir=str(tmp_path / "cache"))
    scan(table_csv, settings)
    code = ("import sys; from dataclasses import replace; "
            "from labelaudit.scan import ScanSettings, scan; "
            f"scan({str(table_csv)!r}, replace({settings!r}, top_k=3)); "
            "print([m for m in ('torch', 'sklearn', 'cleanlab') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_result_cache_skips_all_computing_when_only_the_output_changes(tmp_path, table_csv,
                                                                      monkeypatch):
    from labelaudit import audit, features

    settings = ScanSettings(epochs=5, cv=3, audit="always", cache_dir=str(tmp_path / "cache"))
    first = scan(table_csv, settings)
    computed = []
    real_features, real_find = features.make_features, audit.find_issues
    monkeypatch.setattr(features, "make_features", lambda *a, **k: computed.append(
        "features") or real_features(*a, **k))
    monkeypatch.setattr(audit, "find_issues", lambda *a, **k: computed.append(
        "cleanlab") or real_find(*a, **k))

    # Only what is shown changes: the whole result comes from the cache, nothing is computed.
    again = scan(table_csv, replace(settings, top_k=3, n_jobs=2))
    assert computed == []
    assert "cached_result" in again.timings and "folds" not in again.timings
    pd.testing.assert_frame_equal(first.issues, again.issues)
    pd.testing.assert_frame_equal(first.history, again.history)
    assert again.settings.top_k == 3 and again.audit == first.audit

    # Reviewed decisions are applied to the cached result, not stored in it.
    flagged = first.issues.loc[first.issues["is_label_issue"], "id"].iloc[0]
    decisions = tmp_path / "decisions.csv"
    pd.DataFrame({"id": [flagged], "decision": ["keep"], "new_label": [""]}).to_csv(
        decisions, index=False)
    reviewed = scan(table_csv, replace(settings, reviewed=str(decisions)))
    assert computed == []
    assert reviewed.audit["n_reviewed"] == 1
    assert reviewed.audit["n_flagged"] == first.audit["n_flagged"] - 1
    assert scan(table_csv, settings).audit["n_flagged"] == first.audit["n_flagged"]

    # A setting that changes the result (cleanlab's filter) computes it again, from the folds.
    scan(table_csv, replace(settings, filter_by="both"))
    assert computed == ["features", "cleanlab"]

    # The same rows in another file hit; one label changed misses. (read_table reads the
    # numbers exactly as written, on every pandas version, so the copy holds the same values.)
    frame = read_table(table_csv)
    moved = tmp_path / "moved.csv"
    frame.to_csv(moved, index=False)
    computed.clear()
    scan(moved, settings)
    assert computed == []
    frame.loc[0, "label"] = sorted(set(frame["label"]) - {frame.loc[0, "label"]})[0]
    frame.to_csv(moved, index=False)
    scan(moved, settings)
    assert computed == ["features", "cleanlab"]


def test_dask_local_cluster_matches_local_run(table_csv):
    distributed = pytest.importorskip("distributed")
    settings = ScanSettings(epochs=5, cv=3, audit="always")
    local = scan(table_csv, settings)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as cluster:
        on_dask = scan(table_csv, replace(settings, backend="dask",
                                          scheduler=cluster.scheduler_address))
    _same_result(local, on_dask)


def test_dask_via_cli_and_environment(tmp_path, table_csv, monkeypatch):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as cluster:
        monkeypatch.setenv("LABELAUDIT_DASK_SCHEDULER", cluster.scheduler_address)
        result = runner.invoke(app, ["scan", str(table_csv), "--out", str(tmp_path / "r"),
                                     "--backend", "dask", "--audit", "always", "--epochs", "4",
                                     "--cv", "3", "-q", "--json", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["settings"]["backend"] == "dask"


def test_dask_without_scheduler_is_a_usage_error(tmp_path, table_csv, monkeypatch):
    monkeypatch.delenv("LABELAUDIT_DASK_SCHEDULER", raising=False)
    result = runner.invoke(app, ["scan", str(table_csv), "--out", str(tmp_path / "r"),
                                 "--backend", "dask", "--audit", "always", "--epochs", "2",
                                 "--cv", "2", "-q"])
    assert result.exit_code == 2
    assert "--scheduler" in result.output


def _noisy_probs(n=3000, k=4, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 4.0 * np.eye(k)[truth]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = truth.copy()
    flipped = rng.random(n) < 0.1
    labels[flipped] = (truth[flipped] + 1) % k
    return labels, probs.astype(np.float32), flipped


def test_low_memory_path_uses_cleanlabs_batched_filter(monkeypatch):
    from labelaudit import audit

    labels, probs, flipped = _noisy_probs()
    in_memory, _ = audit.find_issues(labels, probs)
    monkeypatch.setattr(audit, "LOW_MEMORY_FROM", 0)
    batched, estimates = audit.find_issues(labels, probs)
    assert estimates["filter_by"].startswith("low_self_confidence (batched")
    # Same scores and ranking; the batched filter still finds the flipped labels.
    np.testing.assert_allclose(in_memory["label_quality"], batched["label_quality"], atol=1e-6)
    assert list(in_memory["id"][:50]) == list(batched["id"][:50])
    found = batched.set_index("id").loc[np.arange(len(labels)).astype(str), "is_label_issue"]
    flagged = found.to_numpy(dtype=bool)
    from cleanlab.filter import find_label_issues

    # It approximates cleanlab's in-memory low_self_confidence filter, and finds the flips.
    reference = find_label_issues(labels, probs, filter_by="low_self_confidence")
    assert (flagged == reference).mean() > 0.98
    assert (flagged & flipped).sum() / flipped.sum() > 0.7
    assert (flagged & flipped).sum() / flagged.sum() > 0.8


def test_pooling_in_chunks_equals_pooling_at_once(monkeypatch):
    from labelaudit import audit

    _, a, _ = _noisy_probs(seed=1)
    _, b, _ = _noisy_probs(seed=2)
    whole = audit.pool_probs([a, b], weights=[0.7, 0.3])
    monkeypatch.setattr(audit, "POOL_CHUNK", 7)
    np.testing.assert_array_equal(whole, audit.pool_probs([a, b], weights=[0.7, 0.3]))
    assert whole.dtype == np.float32


def test_large_out_of_fold_arrays_are_memory_mapped(monkeypatch, table_csv):
    from labelaudit import train

    settings = ScanSettings(epochs=5, cv=3, audit="always")
    in_memory = scan(table_csv, settings)
    monkeypatch.setattr(train, "MEMMAP_FROM", 0)
    mapped = scan(table_csv, settings)
    assert all(isinstance(p, np.memmap) for p in mapped.member_probs.values())
    assert not any(isinstance(p, np.memmap) for p in in_memory.member_probs.values())
    _same_result(in_memory, mapped)


@pytest.fixture
def trained_folds(monkeypatch) -> dict:
    """Every fold the scan trains: fold -> (train set, test set, ModelSettings, monitor?)."""
    from labelaudit import train

    seen = {}
    real_train_fold = train.train_fold

    def spy(X, y, train_index, test_index, **kwargs):
        seen[kwargs["fold"]] = (set(train_index), set(test_index), kwargs["settings"],
                                kwargs["monitor"])
        return real_train_fold(X, y, train_index, test_index, **kwargs)

    monkeypatch.setattr(train, "train_fold", spy)
    return seen


def test_big_data_is_monitored_on_a_subsample_as_fold_0(table_csv, trained_folds):
    """Above monitor_max_samples the gap is watched on a seeded subsample of fold 1's split."""
    from labelaudit import train
    from labelaudit.gap import diagnose

    seen = trained_folds
    settings = ScanSettings(epochs=16, cv=3, monitor_max_samples=60)
    healthy = scan(table_csv, replace(settings, audit="never"))
    assert list(seen) == [0]  # only the monitor trained
    monitor_train, monitor_test, monitor_settings, _ = seen[0]
    fold1_train, fold1_test = (set(i) for i in train.fold_splits(
        pd.read_csv(table_csv)["label"].to_numpy(), cv=3)[0])
    assert len(monitor_train) + len(monitor_test) == 60
    assert monitor_train <= fold1_train and monitor_test <= fold1_test
    assert monitor_settings.batch_size == 8  # the batch size of 60 samples, not of 150
    assert set(healthy.history["fold"]) == {0}

    audited = scan(table_csv, replace(settings, audit="always"))
    assert sorted(seen) == [0, 1, 2, 3]
    assert set(audited.history["fold"]) == {0, 1, 2, 3}
    # The verdict is the monitor's in every mode; the audit scores every sample from folds 1-3.
    monitor = audited.history[audited.history["fold"] == 0]
    assert audited.verdict == diagnose(monitor) == healthy.verdict
    assert len(audited.issues) == 150 and not np.isnan(audited.pred_probs).any()
    fold1 = seen[1]
    assert fold1[0] == fold1_train and fold1[2].batch_size != 8
    assert [seen[f][3] for f in sorted(seen)] == [True, False, False, False]

    # A dataset at or below the limit keeps fold 1 as its monitor.
    seen.clear()
    scan(table_csv, replace(settings, audit="never", monitor_max_samples=150))
    assert list(seen) == [1]

    from labelaudit.errors import UsageError

    with pytest.raises(UsageError, match="monitor_max_samples must be at least 20"):
        scan(table_csv, replace(settings, monitor_max_samples=5))


def test_shifted_images_are_monitored_without_shifts_as_fold_0(digit_folder, trained_folds):
    """Images above 16 pixels train on random shifts; the gap is watched on an unshifted twin
    of fold 1 (fold 0), because shifts keep a network from memorising wrong labels."""
    from labelaudit.gap import diagnose

    seen = trained_folds
    settings = ScanSettings(epochs=6, cv=3, image_size=20)
    healthy = scan(digit_folder, replace(settings, audit="never"))
    assert list(seen) == [0] and set(healthy.history["fold"]) == {0}
    assert seen[0][2].shift == 0

    audited = scan(digit_folder, replace(settings, audit="always"))
    assert sorted(seen) == [0, 1, 2, 3]
    assert seen[0][:2] == seen[1][:2]  # the same split as fold 1, all of it
    assert seen[0][2] == replace(seen[1][2], shift=0) and seen[1][2].shift == 2
    # Only fold 0 watches past its best epoch; fold 1 stops like the other audit folds.
    assert [seen[f][3] for f in sorted(seen)] == [True, False, False, False]
    assert audited.verdict == diagnose(audited.history[audited.history["fold"] == 0]) \
        == healthy.verdict
    assert len(audited.issues) == 90 and not np.isnan(audited.pred_probs).any()

    # Unshifted images (8 pixels) keep fold 1 as their monitor.
    seen.clear()
    scan(digit_folder, replace(settings, audit="never", image_size=None))
    assert list(seen) == [1] and seen[1][2].shift == 0 and seen[1][3]

    # Above image_monitor_max_samples, fold 0 watches a subsample of fold 1's split, with the
    # batch size of that many samples; unshifted images are not limited by it.
    seen.clear()
    capped = scan(digit_folder, replace(settings, audit="always", image_monitor_max_samples=40))
    train, test = seen[0][:2]
    assert len(train) + len(test) == 40
    assert set(train) <= set(seen[1][0]) and set(test) <= set(seen[1][1])
    assert seen[0][2] == replace(seen[1][2], shift=0, batch_size=auto_batch_size(40))
    assert capped.audit["best_epochs"][1:] == audited.audit["best_epochs"][1:]  # same audit
    seen.clear()
    scan(digit_folder, replace(settings, audit="never", image_size=None,
                               image_monitor_max_samples=40))
    assert list(seen) == [1]
