"""Regenerate the small training logs in this folder, written the way each framework writes them.

    python tests/data/logs/make_logs.py

Each log holds one curve shape whose regime the tests know (see CURVES). The writers follow the
frameworks' own code: Lightning's CSVLogger (`_ExperimentWriter.save`: csv.DictWriter, header in
first-appearance order, one row per log call), Keras' CSVLogger (header "epoch" + sorted keys,
0-based epochs) and `json.dump(history.history)`, the Hugging Face Trainer's `TrainerState`
(`log_history` with `loss` every `logging_steps`, `eval_loss` at each epoch end, a final summary
entry), and skorch's `History.to_file` (a list with one dict per epoch, batches inside).
TensorBoard event files are binary, so the tests write them with torch's SummaryWriter instead.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
EPOCHS = 20


def wiggle(i: int) -> float:
    """Small deterministic noise, like a real curve's epoch-to-epoch jitter."""
    return 0.008 * math.sin(2.3 * i + 0.7)


def climb(e: int) -> tuple[float, float]:  # memorising wrong labels: train falls, val rises
    return (0.3 + 0.7 * math.exp(-0.2 * e) - 0.012 * e + wiggle(e),
            0.45 + 0.6 * math.exp(-0.4 * e) + 0.03 * max(0, e - 6) + wiggle(e + 5))


def converged(e: int) -> tuple[float, float]:  # both level off, the gap stays put
    return (0.3 + 0.8 * math.exp(-0.5 * e) + wiggle(e),
            0.4 + 0.8 * math.exp(-0.5 * e) + wiggle(e + 5))


def overparam(e: int) -> tuple[float, float]:  # train keeps falling (slowly), val flat
    return (0.1 + 0.9 * math.exp(-0.6 * e) - 0.003 * e + wiggle(e),
            0.5 + 0.6 * math.exp(-0.8 * e) + wiggle(e + 5))


def underfit(e: int) -> tuple[float, float]:  # barely learns
    return (1.0 - 0.004 * e + wiggle(e), 1.01 - 0.004 * e + wiggle(e + 5))


CURVES = {"lightning_metrics.csv": climb, "keras_log.csv": converged,
          "keras_history.json": climb, "trainer_state.json": climb,
          "skorch_history.json": underfit, "plain.csv": overparam}


def lightning(path: Path, curve) -> None:
    steps_per_epoch, log_every = 20, 10
    rows = []
    for epoch in range(EPOCHS):
        train, val = curve(epoch + 1)
        for step in range(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch):
            if (step + 1) % log_every == 0:
                rows.append({"train_loss_step": round(train + 0.05 * wiggle(step) * 10, 6),
                             "epoch": epoch, "step": step})
        last = (epoch + 1) * steps_per_epoch - 1
        rows.append({"val_loss": val, "epoch": epoch, "step": last})
        rows.append({"train_loss_epoch": train, "epoch": epoch, "step": last})
    keys = {}
    for row in rows:
        keys.update(row)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(keys))
        writer.writeheader()
        writer.writerows(rows)


def keras_csv(path: Path, curve) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "accuracy", "loss", "val_accuracy",
                                               "val_loss"])
        writer.writeheader()
        for epoch in range(EPOCHS):
            train, val = curve(epoch + 1)
            writer.writerow({"epoch": epoch, "accuracy": 1 - train / 2, "loss": train,
                             "val_accuracy": 1 - val / 2, "val_loss": val})


def keras_history(path: Path, curve) -> None:
    history = {"accuracy": [], "loss": [], "val_accuracy": [], "val_loss": []}
    for epoch in range(EPOCHS):
        train, val = curve(epoch + 1)
        history["accuracy"].append(1 - train / 2)
        history["loss"].append(train)
        history["val_accuracy"].append(1 - val / 2)
        history["val_loss"].append(val)
    path.write_text(json.dumps(history))


def trainer_state(path: Path, curve) -> None:
    steps_per_epoch, logging_steps = 25, 10
    log = []
    total = EPOCHS * steps_per_epoch
    for step in range(1, total + 1):
        epoch = step / steps_per_epoch
        if step % logging_steps == 0:
            # the Trainer logs the mean training loss since the last log: curve at that point
            train = curve(math.ceil(epoch))[0] + 0.02 * (math.ceil(epoch) - epoch)
            log.append({"epoch": round(epoch, 4), "grad_norm": 1.5, "learning_rate":
                        5e-5 * (1 - step / total), "loss": round(train, 4), "step": step})
        if step % steps_per_epoch == 0:
            val = curve(int(epoch))[1]
            log.append({"epoch": epoch, "eval_accuracy": 1 - val / 2, "eval_loss": val,
                        "eval_runtime": 0.41, "eval_samples_per_second": 487.2,
                        "eval_steps_per_second": 61.0, "step": step})
    log.append({"epoch": float(EPOCHS), "step": total, "total_flos": 1.2e13,
                "train_loss": 0.4321, "train_runtime": 61.3, "train_samples_per_second": 39.1,
                "train_steps_per_second": 4.9})
    state = {"best_global_step": None, "best_metric": None, "best_model_checkpoint": None,
             "epoch": float(EPOCHS), "eval_steps": 500, "global_step": total,
             "is_hyper_param_search": False, "is_local_process_zero": True,
             "is_world_process_zero": True, "log_history": log, "logging_steps": logging_steps,
             "max_steps": total, "num_input_tokens_seen": 0, "num_train_epochs": EPOCHS,
             "save_steps": 500, "stateful_callbacks": {"TrainerControl": {
                 "args": {"should_epoch_stop": False, "should_evaluate": False,
                          "should_log": False, "should_save": True,
                          "should_training_stop": True}, "attributes": {}}},
             "total_flos": 1.2e13, "train_batch_size": 8, "trial_name": None,
             "trial_params": None}
    path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


def skorch_history(path: Path, curve) -> None:
    history = []
    for epoch in range(1, EPOCHS + 1):
        train, val = curve(epoch)
        history.append({
            "batches": [{"train_loss": train + 0.01, "train_batch_size": 128},
                        {"train_loss": train - 0.01, "train_batch_size": 72},
                        {"valid_loss": val, "valid_batch_size": 50}],
            "epoch": epoch, "train_batch_count": 2, "valid_batch_count": 1, "dur": 0.0213,
            "train_loss": train, "train_loss_best": epoch == 1 or train < curve(epoch - 1)[0],
            "valid_loss": val, "valid_loss_best": epoch == 1 or val < curve(epoch - 1)[1],
            "valid_acc": 1 - val / 2, "valid_acc_best": epoch == 1 or val < curve(epoch - 1)[1],
        })
    path.write_text(json.dumps(history))


def plain(path: Path, curve) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Epoch", "Train Loss", "Validation Loss", "lr"])
        for epoch in range(1, EPOCHS + 1):
            writer.writerow([epoch, *(round(v, 5) for v in curve(epoch)), 0.001])


def main() -> None:
    writers = {"lightning_metrics.csv": lightning, "keras_log.csv": keras_csv,
               "keras_history.json": keras_history, "trainer_state.json": trainer_state,
               "skorch_history.json": skorch_history, "plain.csv": plain}
    for name, write in writers.items():
        write(HERE / name, CURVES[name])


if __name__ == "__main__":
    main()
