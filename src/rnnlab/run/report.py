"""What a run reports: hyperparameters and final metrics for TensorBoard, `metrics.json`, the summary line."""

from __future__ import annotations

import json
import logging
import math
import statistics
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard.summary import hparams as tensorboard_hparams

from rnnlab.atomic import write_text_atomically
from rnnlab.run.build import throughput_of
from rnnlab.run.provenance import as_hyperparameters, run_identity
from rnnlab.tracking.mlflow import params_for

log = logging.getLogger(__name__)


def run_hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """The choices that define a run, flattened for TensorBoard's HPARAMS tab."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    flat = {"seed": cfg.seed, "max_epochs": cfg.trainer.get("max_epochs")}
    for group in ("model", "data", "optimizer", "scheduler", "task"):
        for key, value in (resolved.get(group) or {}).items():
            if key in ("_target_", "_partial_", "data_dir", "url", "sha1"):
                continue
            flat[f"{group}/{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def hparam_metrics(task: Any) -> tuple[str, ...]:
    """The metrics.json entries shown in TensorBoard's HPARAMS tab (as hp/NAME)."""
    also = [f"{stage}_{name}" for name in task.also_reported for stage in ("val", "test")]
    return (f"val_{task.metric}", f"test_{task.metric}", *also, f"{task.throughput_unit}_per_s")


def log_hyperparameters(trainer: L.Trainer, cfg: DictConfig, task: Any) -> None:
    """The run's settings for every logger; TensorBoard's HPARAMS session also names the final metrics.

    Lightning's `log_hyperparameters(params, metrics)` would also write each metric's placeholder as a
    scalar at step 0 (a stray point on every hp/* chart), so the session is written here with the
    metric names only; `log_final_metrics` writes their one real value at the end.
    """
    hparams = {**run_hyperparameters(cfg), **as_hyperparameters(run_identity(cfg, task))}
    names = {f"hp/{name}": math.nan for name in hparam_metrics(task)}
    for logger in trainer.loggers:
        # hparams.yaml; with no metrics, no HPARAMS session (MLflow: the whole config as params)
        logger.log_hyperparams(params_for(logger, cfg, hparams))
        if isinstance(logger, TensorBoardLogger) and trainer.is_global_zero:
            writer = logger.experiment.file_writer
            for summary in tensorboard_hparams(hparams, names):  # experiment, session start, session end
                writer.add_summary(summary)


def log_final_metrics(trainer: L.Trainer, task: Any, metrics: dict[str, Any]) -> None:
    for logger in trainer.loggers:
        logger.log_metrics(
            {f"hp/{key}": metrics[key] for key in hparam_metrics(task) if metrics.get(key) is not None},
            step=trainer.global_step,
        )
        logger.save()


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def final_metrics(trainer: L.Trainer, task: Any, fitted: dict[str, Any]) -> dict[str, Any]:
    """The completed run's entries of metrics.json: the headline metric at its best, every test
    metric, the throughput, and what the task adds (`Task.summary`)."""
    checkpoint = trainer.checkpoint_callback
    has_checkpoint = isinstance(checkpoint, ModelCheckpoint)
    if has_checkpoint and checkpoint.monitor:
        monitor, mode = checkpoint.monitor, checkpoint.mode
    else:
        monitor, mode = f"val/{task.metric}", task.metric_mode
    name = task.metric
    tested = {
        key.replace("/", "_"): _float(value)
        for key, value in trainer.callback_metrics.items()
        if key.startswith("test/")
    }
    clock = throughput_of(trainer)
    best_path = checkpoint.best_model_path if has_checkpoint else ""
    metrics = {
        "status": "completed",
        "monitor": monitor,
        "monitor_mode": mode,
        f"val_{name}": _float(fitted.get(f"val/{name}")),
        f"train_{name}": _float(fitted.get(f"train/{name}")),
        f"test_{name}": None,
        **tested,
        f"{task.throughput_unit}_per_s": statistics.median(clock.rates) if clock and clock.rates else None,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "best_checkpoint": best_path or None,
        **task.summary(),
    }
    # The monitored metric is reported at its best epoch (the checkpoint tested), not its last.
    if best_path and checkpoint.best_model_score is not None:
        metrics[monitor.replace("/", "_")] = _float(checkpoint.best_model_score)
    metrics.update(task.derived_metrics(metrics))
    return metrics


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    write_text_atomically(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def print_summary(metrics: dict[str, Any], task: Any) -> None:
    def fmt(key: str, spec: str = ".4g") -> str:
        value = metrics.get(key)
        return "-" if value is None else format(value, spec)

    if "early_stopped" in metrics:
        stop = metrics["early_stopped"]
        log.info("stopped early after epoch %d: %s", stop["epoch"], stop["reason"])
    name, unit = task.metric, task.throughput_unit
    tests = [
        key for key in metrics if key.startswith("test_") and key.count("_") == 1 and key != f"test_{name}"
    ]
    log.info(
        "done: best val %s %s | test %s %s%s | train %s %s | %s %s/s | %d epochs in %.0f s",
        name,
        fmt(f"val_{name}"),
        name,
        fmt(f"test_{name}"),
        "".join(f" | test {key[5:]} {fmt(key)}" for key in tests),
        name,
        fmt(f"train_{name}"),
        fmt(f"{unit}_per_s", ",.0f"),
        unit,
        metrics["epochs"],
        metrics["wall_time_s"],
    )
    for line in task.summary_lines(metrics):
        log.info("%s", line)
    log.info("run dir: %s", metrics["run_dir"])
    log.info("look at it: tensorboard --logdir %s", metrics["run_dir"])
