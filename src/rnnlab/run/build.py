"""`build(cfg)`: the datamodule, the network sized by its data, the task and the trainer, from a config.

Public so that the benchmarks and tests assemble exactly what a run trains.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from rnnlab.callbacks.early_stopping import early_stopping_settings, is_early_stopping
from rnnlab.callbacks.new_schedule import FollowNewSchedule
from rnnlab.callbacks.throughput import Throughput
from rnnlab.errors import UserError
from rnnlab.run.checks import check_arguments, check_model_fits_data, check_task_fits_data
from rnnlab.run.step_units import check_checkpoint_steps, trainer_settings_in_batches
from rnnlab.search.trial_reporting import trial_callbacks
from rnnlab.slurm import cluster_plugins


def create(config: Any, **kwargs: Any) -> Any:
    """Hydra's `instantiate`, but a `UserError` raised by the constructor reaches the user as one line."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, UserError):
            raise error.__cause__ from None
        raise


def create_task(cfg: DictConfig, network: Any, inputs: Any) -> L.LightningModule:
    """The task, given the network and what the data hands over (`rnnlab.contract`)."""
    # Built through a partial so that Hydra leaves the network and the inputs alone.
    factory = create(cfg.task, _partial_=True)
    return factory(
        network=network,
        inputs=inputs,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
    )


def create_callbacks(cfg: DictConfig, task: Any) -> list[L.Callback]:
    """The configured callbacks; a best-checkpoint or early-stopping callback without a `monitor` follows
    the task's metric."""
    callbacks = []
    for key, callback in (cfg.get("callbacks") or {}).items():
        if is_early_stopping(key, callback):
            callback = early_stopping_settings(callback, task.metric, task.metric_mode)
        if callback.get("_target_", "").endswith(".ModelCheckpoint") and callback.get("monitor") is None:
            name = task.metric
            callback = OmegaConf.merge(
                callback,
                {
                    "monitor": f"val/{name}",
                    "mode": task.metric_mode,
                    "filename": callback.get("filename")
                    or f"best-epoch{{epoch:03d}}-val_{name}{{val/{name}:.4g}}",
                },
            )
        callbacks.append(create(callback))
    return callbacks


MATMUL_PRECISIONS = ("highest", "high", "medium")


def set_matmul_precision(trainer: DictConfig) -> DictConfig:
    """`trainer.matmul_precision` (not a Trainer argument): torch's float32 matmul precision, which
    Lightning's "Tensor Cores" tip asks for on a GPU (`high`: TF32). The Trainer's config without it."""
    precision = trainer.get("matmul_precision")
    if precision is not None and precision not in MATMUL_PRECISIONS:
        raise UserError(
            f"trainer.matmul_precision={precision} is unknown; choose one of {', '.join(MATMUL_PRECISIONS)}"
        )
    if precision is not None:
        import torch

        torch.set_float32_matmul_precision(precision)
    if "matmul_precision" not in trainer:
        return trainer
    trainer = trainer.copy()
    with open_dict(trainer):
        del trainer["matmul_precision"]
    return trainer


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate the datamodule, then the network sized by its data, the task and the trainer.

    The trainer always gets a `Throughput` clock (the run reports its rate) and `FollowNewSchedule`
    (a resumed schedule takes the new settings), its step counts converted to loader batches
    (`rnnlab.run.step_units`), and the task the network's config (its checkpoints rebuild the
    network without the data).
    """
    check_arguments(cfg)
    check_model_fits_data(cfg)
    datamodule = create(cfg.data)
    check_task_fits_data(cfg, datamodule)
    datamodule.prepare_data()
    datamodule.setup("fit")
    sizes = datamodule.network_sizes()
    network = create(cfg.model, **sizes)
    task = create_task(cfg, network, datamodule.task_inputs())
    task.network_config = {**OmegaConf.to_container(cfg.model, resolve=True), **sizes}
    check_checkpoint_steps(cfg.get("callbacks"), task.steps_per_batch)
    callbacks = [
        *create_callbacks(cfg, task),
        Throughput(),
        FollowNewSchedule(),
        *trial_callbacks(str(cfg.paths.output_dir)),
    ]
    loggers = [create(logger) for logger in (cfg.get("logger") or {}).values()]
    in_batches = trainer_settings_in_batches(cfg.trainer, task.steps_per_batch)  # rnnlab.run.step_units
    trainer_cfg = set_matmul_precision(cfg.trainer)
    # Under srun, SLURM's cluster environment without Lightning's auto-requeue (rnnlab.slurm)
    plugins = [create(plugin) for plugin in trainer_cfg.get("plugins") or []] + cluster_plugins()
    trainer = create(
        trainer_cfg, callbacks=callbacks, logger=loggers or False, plugins=plugins or None, **in_batches
    )
    return datamodule, task, trainer


def throughput_of(trainer: L.Trainer) -> Throughput | None:
    return next((c for c in trainer.callbacks if isinstance(c, Throughput)), None)
