"""`train(cfg)`: one run from a composed config: check, build, fit, test with the best checkpoint, report.

Everything the run writes goes under `cfg.paths.output_dir` (Hydra's run directory): the composed
config and log (Hydra), TensorBoard events, checkpoints, and `metrics.json`, which is written
whether the run completes or fails. A resumed run (`resume=`, see `rnnlab.run.resume`) goes on in
the same folder: the same TensorBoard run from the step it was saved at, the same metrics.json
with the resume recorded.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, open_dict

from rnnlab.callbacks.early_stopping import early_stop_record
from rnnlab.run.build import build
from rnnlab.run.checks import check_checkpoint_fits, check_settings, in_multirun, resolve_checkpoint
from rnnlab.run.console import quiet_libraries
from rnnlab.run.lock import check_not_busy, hold_lock
from rnnlab.run.provenance import run_identity
from rnnlab.run.report import (
    final_metrics,
    log_final_metrics,
    log_hyperparameters,
    print_summary,
    write_metrics,
)
from rnnlab.run.resume import JobPlan, job_plan
from rnnlab.search.trial_reporting import trial_status
from rnnlab.tracking.mlflow import continue_mlflow_run, log_final_to_mlflow, mlflow_record

log = logging.getLogger(__name__)


def job_overrides() -> list[str]:
    """All of this run's command-line overrides (a sweep job's folder names only those that vary)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def train(cfg: DictConfig) -> float:
    """Run one experiment; return the best value of the monitored metric (what sweepers optimise)."""
    quiet_libraries()
    run_dir = Path(cfg.paths.output_dir)
    resuming = cfg.get("resume") or requeued()
    # A requeued job, like a sweep's, may have completed, failed or never saved before.
    as_job = in_multirun() or not cfg.get("resume")
    plan = job_plan(run_dir, in_sweep=as_job) if resuming else JobPlan("start")
    if plan.action == "skip":
        return skip_completed(run_dir, plan)
    if rank_zero_only.rank == 0:  # the other processes of a data-parallel run see rank 0's lock
        check_not_busy(run_dir, "this run")
    started = time.perf_counter()
    metrics: dict[str, Any] = {"status": "running", "run_dir": str(run_dir), "overrides": job_overrides()}
    if plan.action == "resume":
        resumes = [*(plan.previous or {}).get("resumes", []), resume_record(plan)]
        metrics["resumes"] = resumes
        log.info("resuming %s from %s (step %d)", run_dir, plan.checkpoint.name, resumes[-1]["step"])
        continue_tensorboard_run(cfg, resumes[-1]["step"])
        continue_mlflow_run(cfg, plan.previous)
    elif plan.action == "rerun":
        clear_failed_run(run_dir, plan)
    lost = [*(plan.previous or {}).get("lost", []), *plan.lost]  # damaged files set aside, now or before
    if lost:
        metrics["lost"] = lost
    if resuming:
        metrics["resume_action"] = plan.action  # what `resume=` did here; a sweep's report lists them
    lock = hold_lock(run_dir) if rank_zero_only.rank == 0 else None  # the other ranks see rank 0's
    fitting = False  # a resumed run's metrics.json is left as it was if the run stops before fitting
    try:
        check_settings(cfg)
        ckpt_path = str(plan.checkpoint) if plan.checkpoint else resolve_checkpoint(cfg)
        L.seed_everything(cfg.seed, workers=True)
        datamodule, task, trainer = build(cfg)
        metrics.update(run_identity(cfg, task), **mlflow_record(cfg, trainer))  # what the run is
        if ckpt_path:
            check_checkpoint_fits(ckpt_path, task)
        if plan.action != "resume":  # the run's first part wrote its HPARAMS session
            log_hyperparameters(trainer, cfg, task)

        fitting = True
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        fitted = dict(trainer.callback_metrics)
        stopped = early_stop_record(trainer.callbacks)  # before testing restores the best checkpoint's state
        checkpoint = trainer.checkpoint_callback
        best_path = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        if cfg.get("test", True) and not datamodule.has_test_split:
            log.info("no test split (data.splits gives it 0): the run is not tested")
        elif cfg.get("test", True):
            trainer.test(
                task, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True, verbose=False
            )
        metrics.update(final_metrics(trainer, task, fitted), **stopped)
        metrics.update(trial_status(trainer))  # a search's pruned trial says so
        metrics.update(datamodule.summary())
    except BaseException as error:
        metrics.update(
            status="interrupted" if isinstance(error, KeyboardInterrupt | SystemExit) else "failed"
        )
        metrics["error"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        metrics["wall_time_s"] = round(time.perf_counter() - started, 2)
        wanted = fitting or plan.action != "resume"
        if wanted and run_dir.is_dir() and rank_zero_only.rank == 0:  # one file per run, not per process
            write_metrics(run_dir, metrics)
        if lock is not None:
            lock.unlink(missing_ok=True)

    log_final_metrics(trainer, task, metrics)
    log_final_to_mlflow(trainer, metrics)
    if rank_zero_only.rank == 0:
        print_summary(metrics, task)
    return objective(metrics)


def objective(metrics: dict[str, Any]) -> float:
    """The best value of the monitored metric, what a sweeper optimises (NaN if there is none)."""
    best = metrics.get(metrics.get("monitor", "").replace("/", "_"))
    return best if best is not None else math.nan


def requeued() -> bool:
    """A SLURM job started again after preemption (submitit requeues it with the same config and
    folder): it goes on from its checkpoint as if `resume=` had been given."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0


def resume_record(plan: JobPlan) -> dict[str, Any]:
    """Where a resume starts: the checkpoint, its epoch and step (as read when it was chosen), and when."""
    return {
        "checkpoint": plan.checkpoint.name,
        "epoch": plan.position.epoch,
        "step": plan.position.step,
        "at": datetime.now().isoformat(timespec="seconds"),
    }


def continue_tensorboard_run(cfg: DictConfig, step: int) -> None:
    """The same TensorBoard run goes on: points the first part logged after its checkpoint (at optimiser
    step `step`; the x-axis counts optimiser steps) are purged (TensorBoard drops events at or after
    `purge_step` from the files before it), so no step shows twice."""
    for logger in (cfg.get("logger") or {}).values():
        if logger.get("_target_", "").endswith("TensorBoardLogger"):
            with open_dict(logger):
                logger.purge_step = step + 1


def skip_completed(run_dir: Path, plan: JobPlan) -> float:
    """A sweep job that completed before: its result again, without training."""
    metrics = {**plan.previous, "resume_action": "skip"}
    if rank_zero_only.rank == 0:
        write_metrics(run_dir, metrics)
    log.info("resume: %s completed before; skipped", run_dir.name)
    return objective(metrics)


def clear_failed_run(run_dir: Path, plan: JobPlan) -> None:
    """A sweep job that failed before starts again from nothing: its checkpoints and curves go."""
    error = (plan.previous or {}).get("error")
    log.info("resume: %s failed before (%s); running it again", run_dir.name, error)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    for events in run_dir.glob("events.out.tfevents.*"):
        events.unlink()
