"""`build(cfg)`: the datamodule, the network sized by its data, the task and the trainer, from a config.

Public so that the benchmarks and tests assemble exactly what a run trains.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from rnnlab.callbacks.budget import Budget, budget_seconds
from rnnlab.callbacks.early_stopping import early_stopping_settings, is_early_stopping
from rnnlab.callbacks.new_schedule import FollowNewSchedule
from rnnlab.callbacks.throughput import Throughput
from rnnlab.errors import UserError
from rnnlab.lr_schedules import check_warmup_steps
from rnnlab.run.checks import (
    check_arguments,
    check_model_fits_data,
    check_task_fits_data,
    warn_if_bf16_is_emulated,
)
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
    scheduler, warmup_steps = scheduler_and_warmup(cfg.get("scheduler"))
    optimizer, schedule = create(cfg.optimizer), create(scheduler) if scheduler else None
    try_out(optimizer, schedule)
    task = factory(network=network, inputs=inputs, optimizer=optimizer, scheduler=schedule)
    task.warmup_steps = warmup_steps
    return task


def try_out(optimizer: Any, schedule: Any) -> None:
    """An optimiser's and a schedule's settings are checked when they are made, which Lightning does
    only once training has begun: made once here, for a throwaway parameter, so that a bad setting
    is refused before anything is written."""
    import torch

    built = optimizer([torch.nn.Parameter(torch.zeros(1))])
    if schedule is not None:
        schedule(built)


def without(settings: DictConfig, *keys: str) -> DictConfig:
    """A copy of `settings` without `keys` (rnnlab's own settings beside a class's arguments)."""
    if not any(key in settings for key in keys):
        return settings
    settings = settings.copy()
    with open_dict(settings):
        for key in keys:
            settings.pop(key, None)
    return settings


def scheduler_and_warmup(scheduler: DictConfig | None) -> tuple[DictConfig | None, int]:
    """`scheduler.warmup_steps` (rnnlab's, for any schedule: the task ramps the first steps' rates up)
    and the scheduler's config without it."""
    if not scheduler:
        return None, 0
    warmup_steps = check_warmup_steps(scheduler.get("warmup_steps", 0))
    rest = without(scheduler, "warmup_steps")
    # only warmup_steps: the rate is constant after the warmup
    return (rest if "_target_" in rest else None), warmup_steps


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


# A sentinel cadence of `trainer.val_check_interval`: validate only when training stops.
AT_THE_END = "end"
NEVER = 2**62  # loader batches: Lightning's batch-counted cadence never comes round


def validation_cadence(trainer: DictConfig) -> dict[str, Any]:
    """`trainer.val_check_interval=end`: Lightning's arguments that validate only at the stop (the
    `Budget` callback asks Lightning to stop at every limit, and Lightning validates then).
    Lightning's own forms pass through: a fraction, a count (`rnnlab.run.step_units`), or wall time
    ("DD:HH:MM:SS", {minutes: 5})."""
    if trainer.get("val_check_interval") != AT_THE_END:
        return {}
    return {"val_check_interval": NEVER, "check_val_every_n_epoch": None}


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate the datamodule, then the network sized by its data, the task and the trainer.

    The trainer always gets a `Throughput` clock (the run reports its rate), `FollowNewSchedule`
    (a resumed schedule takes the new settings) and the `Budget` (`trainer.max_time`, a validation
    at every stop, the fraction of the budget a `scheduler=budget` reads), its step counts
    converted to loader batches (`rnnlab.run.step_units`), and the task the network's config (its
    checkpoints rebuild the network without the data).
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
        Budget(budget_seconds(cfg.trainer.get("max_time"))),
        *trial_callbacks(str(cfg.paths.output_dir)),
    ]
    loggers = [create(logger) for logger in (cfg.get("logger") or {}).values()]
    in_batches = trainer_settings_in_batches(cfg.trainer, task.steps_per_batch)  # rnnlab.run.step_units
    # max_time is the Budget's: Lightning's own Timer would be a second clock
    trainer_cfg = without(set_matmul_precision(cfg.trainer), "max_time")
    # Under srun, SLURM's cluster environment without Lightning's auto-requeue (rnnlab.slurm)
    plugins = [create(plugin) for plugin in trainer_cfg.get("plugins") or []] + cluster_plugins()
    settings = {**in_batches, **validation_cadence(cfg.trainer)}
    trainer = create(
        trainer_cfg, callbacks=callbacks, logger=loggers or False, plugins=plugins or None, **settings
    )
    warn_if_bf16_is_emulated(trainer)
    return datamodule, task, trainer


def throughput_of(trainer: L.Trainer) -> Throughput | None:
    return next((c for c in trainer.callbacks if isinstance(c, Throughput)), None)
