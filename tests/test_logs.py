"""Reading users' training logs: every format, made the way each framework writes it."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelaudit.errors import UsageError
from labelaudit.gap import diagnose
from labelaudit.logs import align, detect_format, diagnose_log, read_log

LOGS = Path(__file__).parent / "data" / "logs"
EPOCHS = 20

# file -> (format, train key, validation key, regime of the curve it holds)
FIXTURES = {
    "lightning_metrics.csv": ("lightning-csv", "train_loss_epoch", "val_loss", "steep-climb"),
    "keras_log.csv": ("keras-csv", "loss", "val_loss", "converged"),
    "keras_history.json": ("keras-history", "loss", "val_loss", "steep-climb"),
    "trainer_state.json": ("huggingface", "loss", "eval_loss", "steep-climb"),
    "skorch_history.json": ("skorch", "train_loss", "valid_loss", "underfitting"),
    "plain.csv": ("csv", "Train Loss", "Validation Loss", "over-parametrized"),
}


def climb(e):
    """The steep-climb curve of tests/data/logs/make_logs.py, for the TensorBoard logs."""
    wiggle = 0.008 * math.sin(2.3 * e + 0.7), 0.008 * math.sin(2.3 * (e + 5) + 0.7)
    return (0.3 + 0.7 * math.exp(-0.2 * e) - 0.012 * e + wiggle[0],
            0.45 + 0.6 * math.exp(-0.4 * e) + 0.03 * max(0, e - 6) + wiggle[1])


@pytest.mark.parametrize("name", FIXTURES)
def test_each_format_is_detected_and_read(name):
    fmt, train_key, val_key, regime = FIXTURES[name]
    history = read_log(LOGS / name)
    assert detect_format(LOGS / name) == fmt
    assert history.attrs["format"] == fmt
    assert (history.attrs["train_key"], history.attrs["val_key"]) == (train_key, val_key)
    assert list(history.columns) == ["fold", "epoch", "train_loss", "val_loss"]
    # Epochs counted as completed: 0-based frameworks are shifted, none is lost or invented.
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert history["fold"].eq(1).all() and history.notna().all().all()
    assert diagnose(history).regime == regime


def test_lightning_sparse_rows_are_joined_by_epoch():
    raw = pd.read_csv(LOGS / "lightning_metrics.csv")
    history = read_log(LOGS / "lightning_metrics.csv")
    epoch0 = raw[raw["epoch"] == 0]
    assert history.loc[0, "val_loss"] == pytest.approx(epoch0["val_loss"].dropna().iloc[0])
    # The epoch-level training loss is preferred over the per-step one.
    assert history.loc[0, "train_loss"] == pytest.approx(
        epoch0["train_loss_epoch"].dropna().iloc[0])


def test_lightning_step_key_can_be_chosen():
    history = read_log(LOGS / "lightning_metrics.csv", train_key="train_loss_step")
    raw = pd.read_csv(LOGS / "lightning_metrics.csv")
    expected = raw.groupby("epoch")["train_loss_step"].mean().to_numpy()
    assert history["train_loss"].to_numpy() == pytest.approx(expected)


def test_huggingface_aligns_fractional_train_logs_to_each_evaluation():
    state = json.loads((LOGS / "trainer_state.json").read_text())
    log = state["log_history"]
    history = read_log(LOGS / "trainer_state.json")
    # Epoch 1's training loss: mean of `loss` logged in (0, 1]; the final `train_loss` summary
    # entry is not a point of the curve.
    first = [e["loss"] for e in log if "loss" in e and 0 < e["epoch"] <= 1]
    assert history.loc[0, "train_loss"] == pytest.approx(np.mean(first))
    evals = [e["eval_loss"] for e in log if "eval_loss" in e]
    assert history["val_loss"].tolist() == pytest.approx(evals)


def test_huggingface_output_folder_uses_the_latest_checkpoint(tmp_path):
    for step in (100, 300):
        (tmp_path / f"checkpoint-{step}").mkdir()
    state = json.loads((LOGS / "trainer_state.json").read_text())
    early = dict(state, log_history=state["log_history"][:40])
    (tmp_path / "checkpoint-100" / "trainer_state.json").write_text(json.dumps(early))
    shutil.copy(LOGS / "trainer_state.json", tmp_path / "checkpoint-300" / "trainer_state.json")
    assert len(read_log(tmp_path)) == EPOCHS


def test_align_means_train_points_since_the_previous_evaluation():
    x, train, val = align([0.5, 1.0, 2.5], [4.0, 2.0, 1.0], [1.0, 2.0, 3.0], [3.0, 2.5, 2.0])
    assert x.tolist() == [1.0, 2.0, 3.0]
    # (0, 1]: mean of 4 and 2; (1, 2]: nothing logged, interpolated between 1.0 and 2.5;
    # (2, 3]: the one point at 2.5.
    assert train.tolist() == pytest.approx([3.0, 2.0 - 1.0 / 1.5, 1.0])
    assert val.tolist() == [3.0, 2.5, 2.0]


def test_plain_csv_keeps_folds_like_labelaudit_history(tmp_path):
    epochs = np.arange(1, 9)
    frame = pd.concat([pd.DataFrame({"fold": f, "epoch": epochs, "train_loss": 1 / epochs,
                                     "val_loss": 1 / epochs + 0.1, "gap": 0.1})
                       for f in (1, 2, 3)])
    frame.to_csv(tmp_path / "history.csv", index=False)
    history = read_log(tmp_path / "history.csv")
    assert history.attrs["format"] == "csv"
    assert sorted(history["fold"].unique()) == [1, 2, 3] and len(history) == 24


def test_keras_csvlogger_with_another_separator(tmp_path):
    raw = pd.read_csv(LOGS / "keras_log.csv")
    raw.to_csv(tmp_path / "log.csv", sep=";", index=False)
    history = read_log(tmp_path / "log.csv")
    assert history.attrs["format"] == "keras-csv"
    assert history["val_loss"].tolist() == pytest.approx(raw["val_loss"].tolist())


# --- TensorBoard: real event files, written the way each framework writes them -------------


def _writer(folder):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder))


def test_tensorboard_pytorch_summarywriter(tmp_path):
    with _writer(tmp_path) as writer:
        for e in range(1, EPOCHS + 1):
            train, val = climb(e)
            writer.add_scalar("Loss/train", train, e)
            writer.add_scalar("Loss/val", val, e)
            writer.add_scalar("Accuracy/val", 1 - val / 2, e)
    history = read_log(tmp_path)
    assert history.attrs["format"] == "tensorboard"
    assert (history.attrs["train_key"], history.attrs["val_key"]) == ("Loss/train", "Loss/val")
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert history["val_loss"].tolist() == pytest.approx([climb(e)[1] for e in
                                                          range(1, EPOCHS + 1)], rel=1e-6)
    assert diagnose(history).regime == "steep-climb"
    # A single event file works as well as its folder.
    event_file = next(tmp_path.glob("events.out.tfevents*"))
    assert read_log(event_file)["train_loss"].tolist() == history["train_loss"].tolist()


def test_tensorboard_add_scalars_runs(tmp_path):
    with _writer(tmp_path) as writer:
        for e in range(1, EPOCHS + 1):
            train, val = climb(e)
            writer.add_scalars("loss", {"train": train, "val": val}, e)
    history = read_log(tmp_path)
    assert (history.attrs["train_key"], history.attrs["val_key"]) == ("loss_train/loss",
                                                                      "loss_val/loss")
    assert len(history) == EPOCHS


def test_tensorboard_keras_layout_with_tensor_summaries(tmp_path):
    """Keras' TensorBoard callback: train/ and validation/ runs, TF2 tensor scalars, 0-based."""
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    for run, index in (("train", 0), ("validation", 1)):
        with _writer(tmp_path / run) as writer:
            for epoch in range(EPOCHS):
                value = climb(epoch + 1)[index]
                writer._get_file_writer().add_summary(scalar_pb("epoch_loss", value), epoch)
                writer._get_file_writer().add_summary(
                    scalar_pb("epoch_accuracy", 1 - value / 2), epoch)
    history = read_log(tmp_path)
    assert (history.attrs["train_key"], history.attrs["val_key"]) == ("train/epoch_loss",
                                                                      "validation/epoch_loss")
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert history["train_loss"].tolist() == pytest.approx([climb(e)[0] for e in
                                                            range(1, EPOCHS + 1)], rel=1e-6)


def test_tensorboard_lightning_steps_map_to_epochs(tmp_path):
    steps_per_epoch = 20
    with _writer(tmp_path) as writer:
        for epoch in range(EPOCHS):
            train, val = climb(epoch + 1)
            for step in range(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch):
                if (step + 1) % 10 == 0:
                    writer.add_scalar("train_loss_step", train, step)
                    writer.add_scalar("epoch", epoch, step)
            last = (epoch + 1) * steps_per_epoch - 1
            writer.add_scalar("val_loss", val, last)
            writer.add_scalar("train_loss_epoch", train, last)
            writer.add_scalar("epoch", epoch, last)
    history = read_log(tmp_path)
    assert history.attrs["train_key"] == "train_loss_epoch"
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert history["val_loss"].tolist() == pytest.approx([climb(e)[1] for e in
                                                          range(1, EPOCHS + 1)], rel=1e-6)


def test_tensorboard_huggingface_fractional_epochs(tmp_path):
    steps_per_epoch = 25
    with _writer(tmp_path) as writer:
        for step in range(1, EPOCHS * steps_per_epoch + 1):
            epoch = step / steps_per_epoch
            if step % 10 == 0:
                writer.add_scalar("train/loss", climb(math.ceil(epoch))[0], step)
                writer.add_scalar("train/epoch", epoch, step)
            if step % steps_per_epoch == 0:
                writer.add_scalar("eval/loss", climb(int(epoch))[1], step)
                writer.add_scalar("train/epoch", epoch, step)
        writer.add_scalar("train/train_loss", 0.4321, EPOCHS * steps_per_epoch)
    history = read_log(tmp_path)
    assert (history.attrs["train_key"], history.attrs["val_key"]) == ("train/loss", "eval/loss")
    assert history["epoch"].tolist() == pytest.approx(list(range(1, EPOCHS + 1)))
    assert diagnose(history).regime == "steep-climb"


def test_tensorboard_missing_is_a_clear_usage_error(tmp_path, monkeypatch):
    import builtins

    (tmp_path / "events.out.tfevents.1.host").write_bytes(b"")
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("tensorboard"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(UsageError, match=r"pip install 'labelaudit\[tensorboard\]'"):
        read_log(tmp_path)


# --- errors ----------------------------------------------------------------------------------


def test_unknown_keys_list_what_was_found(tmp_path):
    (tmp_path / "log.csv").write_text("epoch,acc,val_acc\n1,0.5,0.4\n2,0.6,0.5\n")
    with pytest.raises(UsageError) as error:
        read_log(tmp_path / "log.csv")
    message = str(error.value)
    assert "found no training loss" in message
    assert "acc, val_acc" in message and "--train-key" in message and "--val-key" in message


def test_a_wrong_key_names_the_keys_found():
    found = "accuracy, loss, val_accuracy, val_loss"
    with pytest.raises(UsageError, match=rf"no validation loss key 'nope'.*{found}"):
        read_log(LOGS / "keras_history.json", val_key="nope")


def test_ambiguous_losses_ask_for_a_key(tmp_path):
    (tmp_path / "log.csv").write_text("epoch,ce_loss,aux_loss,val_loss\n1,1,2,1\n2,1,2,1\n")
    with pytest.raises(UsageError, match=r"several keys could be the training loss"):
        read_log(tmp_path / "log.csv")
    history = read_log(tmp_path / "log.csv", train_key="ce_loss")
    assert history["train_loss"].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"best_metric": 1}', "keys found in"),
    ('{"log_history": [{"epoch": 1, "loss": 0.5, "step": 5}]}', "eval_strategy"),
])
def test_bad_json_logs(tmp_path, content, message):
    (tmp_path / "trainer_state.json").write_text(content)
    with pytest.raises(UsageError, match=message):
        read_log(tmp_path / "trainer_state.json")


def test_missing_path_and_folder_without_logs(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        read_log(tmp_path / "nope.csv")
    with pytest.raises(UsageError, match="found no training log"):
        read_log(tmp_path)


def test_log_files_are_left_untouched():
    before = {p.name: p.read_bytes() for p in LOGS.iterdir() if p.is_file()}
    for name in FIXTURES:
        read_log(LOGS / name)
    assert before == {p.name: p.read_bytes() for p in LOGS.iterdir() if p.is_file()}


def test_diagnose_log_merges_verdict_format_and_plot(tmp_path):
    result = diagnose_log(LOGS / "trainer_state.json", plot=tmp_path / "curves.svg")
    assert result["format"] == "huggingface" and result["regime"] == "steep-climb"
    assert result["plot"] == str(tmp_path / "curves.svg")
    assert (tmp_path / "curves.svg").read_text().startswith("<svg")
    json.dumps(result)  # JSON-ready
    with pytest.raises(UsageError, match=r"\.svg or \.png"):
        diagnose_log(LOGS / "trainer_state.json", plot=tmp_path / "curves.jpg")
