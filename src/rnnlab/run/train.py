"""`train(cfg)`: one run from a composed config: check, build, fit, test with the best checkpoint, report.

Everything the run writes goes under `cfg.paths.output_dir` (Hydra's run directory): the composed
config and log (Hydra), TensorBoard events, checkpoints, and `metrics.json`, which is written
whether the run completes or fails.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from rnnlab.run.build import build
from rnnlab.run.checks import check_settings, resolve_checkpoint
from rnnlab.run.console import quiet_libraries
from rnnlab.run.report import (
    final_metrics,
    log_final_metrics,
    log_hyperparameters,
    print_summary,
    write_metrics,
)


def job_overrides() -> list[str]:
    """All of this run's command-line overrides (a sweep job's folder names only those that vary)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def train(cfg: DictConfig) -> float:
    """Run one experiment; return the best value of the monitored metric (what sweepers optimise)."""
    quiet_libraries()
    run_dir = Path(cfg.paths.output_dir)
    started = time.perf_counter()
    metrics: dict[str, Any] = {"status": "running", "run_dir": str(run_dir), "overrides": job_overrides()}
    try:
        check_settings(cfg)
        ckpt_path = resolve_checkpoint(cfg)
        L.seed_everything(cfg.seed, workers=True)
        datamodule, task, trainer = build(cfg)
        log_hyperparameters(trainer, cfg, task)

        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        fitted = dict(trainer.callback_metrics)
        checkpoint = trainer.checkpoint_callback
        best_path = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        if cfg.get("test", True):
            trainer.test(
                task, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True, verbose=False
            )
        metrics.update(final_metrics(trainer, task, fitted))
        metrics.update(datamodule.summary() if hasattr(datamodule, "summary") else {})
    except BaseException as error:
        metrics.update(
            status="interrupted" if isinstance(error, KeyboardInterrupt | SystemExit) else "failed"
        )
        metrics["error"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        metrics["wall_time_s"] = round(time.perf_counter() - started, 2)
        if run_dir.is_dir() and rank_zero_only.rank == 0:  # one file per run, however many processes
            write_metrics(run_dir, metrics)

    log_final_metrics(trainer, task, metrics)
    if rank_zero_only.rank == 0:
        print_summary(metrics, task)
    best = metrics.get(metrics["monitor"].replace("/", "_"))
    return best if best is not None else math.nan
