"""Each setting is declared once (labelaudit.settings); the CLI, validation, report and cache
keys are derived from those declarations, so adding a setting touches one place."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict, fields

import pytest
import typer.main
from typer.testing import CliRunner

from labelaudit import cache, report, settings, train
from labelaudit.cli import app
from labelaudit.errors import UsageError
from labelaudit.settings import ScanSettings, declared, option_name, validate_settings

# A value each checked setting refuses. A new setting with a constraint needs a row here.
REFUSED = {
    "kind": "audio", "image_size": 3, "epochs": 0, "batch_size": 0, "lr": -1.0,
    "device": "gpu", "cv": 1, "seed": -1, "audit": "sometimes", "filter_by": "vote",
    "monitor_max_samples": 19, "image_monitor_max_samples": 19, "top_k": -1, "n_jobs": 0,
    "backend": "spark",
}
FLAGGED = [f for f in fields(ScanSettings) if declared(f).help is not None]


def _params(command: str) -> dict:
    group = typer.main.get_command(app)
    return {p.name: p for p in group.commands[command].params}


def test_scan_settings_stay_one_flat_object():
    settings_ = ScanSettings(audit="always", epochs=2)
    flat = asdict(settings_)
    assert flat["audit"] == "always" and flat["epochs"] == 2 and flat["cv"] == 5
    assert set(flat) == {f.name for f in fields(ScanSettings)}
    assert all(not isinstance(v, dict) for v in flat.values())


@pytest.mark.parametrize("f", FLAGGED, ids=lambda f: f.name)
def test_every_flagged_setting_is_a_scan_option_with_its_default(f):
    param = _params("scan")[f.name]
    assert option_name(f) in param.opts
    assert param.help == declared(f).help
    default = param.default.value if hasattr(param.default, "value") else param.default
    assert default == f.default


def test_scan_help_lists_every_flagged_setting():
    result = CliRunner().invoke(app, ["scan", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    for f in FLAGGED:
        assert option_name(f) in result.output, f.name
    for name in ("--out", "-o", "--fail-above", "--no-cache", "--json", "--quiet", "-q"):
        assert name in result.output


def test_selftest_offers_its_settings_with_its_own_seed_help():
    params = _params("selftest")
    assert {"kind", "label_column", "text_column", "id_column", "encoding", "cv", "epochs",
            "seed"} <= set(params)
    assert params["seed"].help == "Random seed for the injection and the scan."
    assert params["cv"].help == declared(settings.field_named("cv")).help


def test_choices_come_from_the_declarations():
    result = CliRunner().invoke(app, ["scan", "--help"], env={"COLUMNS": "400"})
    for choices in (settings.KINDS, settings.AUDIT_MODES, settings.FILTERS):
        assert "<" + "|".join(choices) + ">" in result.output
    refused = CliRunner().invoke(app, ["scan", "data.csv", "--audit", "sometimes"])
    assert refused.exit_code == 2


def test_every_declared_check_runs_in_validate_settings():
    checked = {f.name for f in fields(ScanSettings) if declared(f).checks}
    assert checked == set(REFUSED)
    for name, value in REFUSED.items():
        with pytest.raises(UsageError) as info:
            validate_settings(ScanSettings(**{name: value}))
        assert str(info.value).startswith(option_name(settings.field_named(name))), name
    validate_settings(ScanSettings())


@pytest.mark.parametrize("name, value, message", [
    ("cv", 1, "--cv must be at least 2 (got 1)"),
    ("epochs", 0, "--epochs must be at least 1 (got 0)"),
    ("batch_size", 0, "--batch-size must be at least 1 (got 0)"),
    ("lr", 0, "--lr must be a positive number (got 0)"),
    ("image_size", 1, "--image-size must be at least 4 pixels (got 1)"),
    ("top_k", -1, "--top-k must be 0 or more (got -1)"),
    ("n_jobs", 0, "--n-jobs must not be 0; use 1 for serial, -1 for all cores"),
    ("backend", "spark", "--backend must be local or dask, not 'spark'"),
    ("audit", "x", "--audit must be one of auto, always, never, not 'x'"),
    ("kind", "x", "--kind must be one of images, tabular, text, not 'x'"),
    ("monitor_max_samples", 5,
     "monitor_max_samples must be at least 20, or None to watch all of fold 1 (got 5)"),
    ("device", "gpu", "--device must be auto, cpu, cuda, cuda:N or mps, not 'gpu'"),
])
def test_messages_name_the_option(name, value, message):
    with pytest.raises(UsageError) as info:
        validate_settings(ScanSettings(**{name: value}))
    assert str(info.value) == message


def test_report_and_cache_lists_come_from_the_declarations():
    assert report.SHOWN == tuple(f.name for f in fields(ScanSettings) if declared(f).shown)
    assert set(report.SHOWN) == {"cv", "epochs", "batch_size", "lr", "hidden", "image_size",
                                 "seed", "audit", "filter_by", "top_k", "device",
                                 "label_column", "text_column", "id_column",
                                 "pred_probs", "history", "embeddings", "encoder"}
    assert cache.RESULT_FREE == tuple(f.name for f in fields(settings.RunSettings))
    assert set(cache.RESULT_FREE) == {"top_k", "n_jobs", "backend", "scheduler", "cache_dir",
                                      "reviewed"}


def test_model_settings_copy_the_training_fields():
    training = {f.name for f in fields(settings.TrainingSettings)}
    assert training <= {f.name for f in fields(train.ModelSettings)}
    model = train.ModelSettings.of(ScanSettings(lr=0.02, hidden=7), kind="features",
                                   n_classes=2, batch_size=16)
    assert (model.lr, model.hidden, model.batch_size) == (0.02, 7, 16)


def test_help_imports_no_heavy_library():
    code = ("import sys; from labelaudit.cli import app\n"
            "for args in (['--help'], ['scan', '--help'], ['selftest', '--help']):\n"
            "    try: app(args)\n"
            "    except SystemExit: pass\n"
            "print([m for m in ('torch', 'sklearn', 'cleanlab', 'numpy') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
