"""Every use rnnlab makes of Lightning's, torch's and torchmetrics' private or undocumented API.

Nothing else in rnnlab imports a private name or reaches into a loop's state: it calls one of these
functions. Each says what it relies on, and `tests/test_lightning_internals.py` checks each one
against the installed versions, so an upgrade that changes one fails there, by name, rather than
somewhere inside a training run. pyproject pins the minor versions these were checked on.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.utilities.model_helpers import is_overridden
from torchmetrics import Metric

TESTED_LIGHTNING = "2.6"  # the minor versions these accessors were written for (pyproject pins them)
TESTED_TORCHMETRICS = "1.9"


def attached_trainer(module: L.LightningModule) -> L.Trainer | None:
    """The trainer a module is attached to, or None. `module.trainer` raises when there is none;
    the private `_trainer` attribute is what it reads."""
    return module._trainer


def count_optimizer_step(trainer: L.Trainer) -> None:
    """Count one optimiser step taken outside Lightning's optimizer wrapper, as the wrapper would:
    `global_step` (and so `max_steps` and `every_n_train_steps`) read the manual-optimisation
    loop's `optim_step_progress`, which the wrapper increments (ready, then completed) per step."""
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    progress.increment_ready()
    progress.increment_completed()


def batches_done_this_epoch(trainer: L.Trainer) -> int:
    """Training batches of the current epoch whose step ran (the epoch loop's
    `batch_progress.current.ready`; counted before the batch-end hooks, unlike `batch_idx`).
    This, not what a sampler has yielded, is where a resumed epoch goes on: Lightning fetches a
    batch ahead."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.ready


def writes_logs_after_this_batch(trainer: L.Trainer) -> bool:
    """Whether Lightning sends the step metrics to the loggers after the training batch in hand:
    its logger connector's `should_update_logs` (every `log_every_n_steps` loader batches, and
    when training is stopping). Asking it, rather than repeating its arithmetic, keeps the task's
    "log now" decision and Lightning's the same."""
    return trainer._logger_connector.should_update_logs


def callbacks_override(trainer: L.Trainer, hooks: tuple[str, ...]) -> bool:
    """Whether any of the trainer's callbacks overrides one of `hooks` (Lightning's `is_overridden`,
    which compares a method with the base class's own)."""
    return any(is_overridden(hook, callback, Callback) for hook in hooks for callback in trainer.callbacks)


def module_overrides(module: L.LightningModule, hooks: tuple[str, ...]) -> bool:
    """Whether `module`'s class overrides one of `hooks` of `LightningModule` (`is_overridden`)."""
    return any(is_overridden(hook, module, L.LightningModule) for hook in hooks)


def precision_is_plain(trainer: L.Trainer) -> bool:
    """Whether the precision plugin does nothing to a backward or a step: full precision, or autocast
    without loss scaling (bf16). Exact types, because a subclass (double, fp16 with a scaler,
    DeepSpeed's) may do more; `scaler` is MixedPrecision's GradScaler, None for bf16."""
    plugin = trainer.precision_plugin
    return type(plugin) is Precision or (type(plugin) is MixedPrecision and plugin.scaler is None)


def closed_form_rates(scheduler: Any) -> list[float] | None:
    """The learning rates a scheduler's formula gives at its current epoch (`_get_closed_form_lr`,
    which torch's closed-form schedulers such as CosineAnnealingLR and StepLR have; rnnlab's own
    give `rates_now`), or None for a scheduler without one (OneCycleLR precomputes its phases;
    LambdaLR calls user code)."""
    closed_form = getattr(scheduler, "rates_now", None) or getattr(scheduler, "_get_closed_form_lr", None)
    return None if closed_form is None else list(closed_form())


def set_scheduler_rates(scheduler: Any, rates: list[float]) -> None:
    """Put `rates` into the optimiser's groups and into the scheduler's record of its last rates
    (`_last_lr`, what `get_last_lr()` returns and chainable schedules step from)."""
    for group, rate in zip(scheduler.optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
    scheduler._last_lr = list(rates)


def set_update_count(metric: Metric, count: int) -> None:
    """How many updates a metric has had (`_update_count`; torchmetrics offers a getter only), so
    that a metric restored mid-epoch computes and warns as the one it was saved from."""
    metric._update_count = count
