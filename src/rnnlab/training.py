"""`train(cfg)`: one run from a composed config: build, fit, test with the best checkpoint, report.

Everything the run writes goes under `cfg.paths.output_dir` (Hydra's run directory): the composed
config and log (Hydra), TensorBoard events, checkpoints, and `metrics.json`, which is written
whether the run completes or fails.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from rnnlab.errors import UserError

log = logging.getLogger(__name__)

# `import lightning` gives the "lightning" logger a console handler of its own, on top of the root
# handlers Hydra sets up (console and the run's log file): without this every line prints twice.
logging.getLogger("lightning").handlers.clear()
# ...and advertises a cloud service on every run.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: not str(record.msg).startswith("💡 Tip")
)
# Batches are windows of an in-memory tensor, so loader workers would only add start-up cost.
warnings.filterwarnings("ignore", ".*does not have many workers.*")
# Raised from inside Lightning 2.6 on torch >= 2.10; nothing a user can act on.
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")

HPARAM_METRICS = ("val_ppl", "test_ppl", "tokens_per_s")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write by rename, so a reader never sees half a file."""
    temp = path.with_suffix(".json.tmp")
    temp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temp, path)


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


def create(config: Any, **kwargs: Any) -> Any:
    """Hydra's `instantiate`, but a `UserError` raised by the constructor reaches the user unwrapped."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, UserError):
            raise error.__cause__ from None
        raise


def check_settings(cfg: DictConfig) -> None:
    """Settings that would only fail deep inside Lightning or torch, refused up front in one line."""
    lr = cfg.optimizer.get("lr")
    if lr is not None and lr <= 0:
        raise UserError(f"optimizer.lr={lr} must be positive")
    strategy = str(cfg.trainer.get("strategy", ""))
    relaunches_script = strategy.startswith("ddp") and not strategy.startswith("ddp_spawn")
    if relaunches_script and HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise UserError(
            "trainer=ddp cannot run inside a -m sweep (each process would re-run the whole sweep); "
            "use trainer=ddp_spawn, or a launcher such as hydra/launcher=submitit_slurm"
        )
    epochs = cfg.trainer.get("max_epochs")
    if epochs is not None and epochs < 1 and epochs != -1:
        raise UserError(f"trainer.max_epochs={epochs} must be at least 1 (or -1 with trainer.max_steps)")


def resolve_checkpoint(cfg: DictConfig) -> str | None:
    """`ckpt_path`: a file, or `last`: the newest last/interrupted checkpoint of earlier runs."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        root = Path(cfg.paths.output_root)
        run_dir = Path(cfg.paths.output_dir).resolve()
        candidates = [
            path
            for name in ("last.ckpt", "interrupted.ckpt")
            for path in root.glob(f"**/checkpoints/{name}")
            if run_dir not in path.resolve().parents
        ]
        if not candidates:
            raise UserError(f"ckpt_path=last: no checkpoints/last.ckpt under {root}; give a checkpoint path")
        newest = max(candidates, key=lambda path: path.stat().st_mtime)
        log.info("ckpt_path=last: resuming from %s", newest)
        return str(newest)
    if not Path(ckpt_path).is_file():
        raise UserError(f"ckpt_path={ckpt_path} is not a file; give the path of a .ckpt to resume from")
    return ckpt_path


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate the datamodule, then the network sized by its data, the task and the trainer."""
    datamodule = create(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    network = create(cfg.model, vocab_size=datamodule.vocab_size)
    # Built through a partial so that Hydra leaves the objects and the plain network config alone.
    task = create(cfg.task, _partial_=True)(
        network=network,
        vocab=datamodule.vocab,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        network_config=OmegaConf.to_container(cfg.model, resolve=True),
        carry_state=datamodule.carries_state,
    )
    callbacks = [create(callback) for callback in (cfg.get("callbacks") or {}).values()]
    loggers = [create(logger) for logger in (cfg.get("logger") or {}).values()]
    trainer = create(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return datamodule, task, trainer


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def train(cfg: DictConfig) -> float:
    """Run one experiment; return the best validation perplexity (what sweepers minimise)."""
    run_dir = Path(cfg.paths.output_dir)
    started = time.perf_counter()
    metrics: dict[str, Any] = {"status": "running", "run_dir": str(run_dir)}
    try:
        check_settings(cfg)
        ckpt_path = resolve_checkpoint(cfg)
        L.seed_everything(cfg.seed, workers=True)
        datamodule, task, trainer = build(cfg)
        hparams = run_hyperparameters(cfg)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                # Placeholders register the metrics in the HPARAMS tab; the real values follow at the end.
                logger.log_hyperparams(hparams, {f"hp/{name}": math.nan for name in HPARAM_METRICS})
            else:
                logger.log_hyperparams(hparams)

        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        checkpoint = trainer.checkpoint_callback
        best_path = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        fitted = {key: _float(value) for key, value in trainer.callback_metrics.items()}
        if cfg.get("test", True):
            trainer.test(
                task, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True, verbose=False
            )

        best_val = checkpoint.best_model_score if best_path else None
        metrics.update(
            status="completed",
            val_ppl=_float(best_val) if best_val is not None else fitted.get("val/ppl"),
            test_ppl=_float(trainer.callback_metrics.get("test/ppl")),
            train_ppl=fitted.get("train/ppl"),
            tokens_per_s=statistics.median(task.tokens_per_s) if task.tokens_per_s else None,
            epochs=trainer.current_epoch,
            steps=trainer.global_step,
            best_checkpoint=best_path or None,
        )
    except BaseException as error:
        metrics.update(
            status="interrupted" if isinstance(error, KeyboardInterrupt | SystemExit) else "failed"
        )
        metrics["error"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        metrics["wall_time_s"] = round(time.perf_counter() - started, 2)
        if run_dir.is_dir() and rank_zero_only.rank == 0:  # one file per run, however many processes
            write_json(run_dir / "metrics.json", metrics)

    for logger in trainer.loggers:
        logger.log_metrics(
            {f"hp/{name}": metrics[name] for name in HPARAM_METRICS if metrics[name] is not None},
            step=trainer.global_step,
        )
        logger.save()
    if rank_zero_only.rank == 0:
        _print_summary(metrics)
    return metrics["val_ppl"] if metrics["val_ppl"] is not None else math.nan


def _print_summary(metrics: dict[str, Any]) -> None:
    def fmt(value: float | None, spec: str = ".3f") -> str:
        return "-" if value is None else format(value, spec)

    log.info(
        "done: best val ppl %s | test ppl %s | train ppl %s | %s tokens/s | %d epochs in %.0f s",
        fmt(metrics["val_ppl"]),
        fmt(metrics["test_ppl"]),
        fmt(metrics["train_ppl"]),
        fmt(metrics["tokens_per_s"], ",.0f"),
        metrics["epochs"],
        metrics["wall_time_s"],
    )
    log.info("run dir: %s", metrics["run_dir"])
    log.info("look at it: tensorboard --logdir %s", metrics["run_dir"])
