"""`FollowNewSchedule`: a resumed run's learning-rate schedule follows the settings of the command
that resumed it (a longer `trainer.max_epochs` stretches the cosine), or is refused in one line.

Lightning restores a scheduler's whole state, its settings included: without this, resuming with a
larger `trainer.max_epochs` would keep the cosine schedule's old `T_max`, and the rate would sit at
its end value for the added epochs.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from rnnlab.errors import UserError
from rnnlab.lightning_internals import closed_form_rates, set_scheduler_rates


def changed_settings(scheduler: Any, settings: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The settings of `settings` (a scheduler factory's keywords) that differ from the scheduler's."""
    return {
        name: (getattr(scheduler, name), value)
        for name, value in settings.items()
        if hasattr(scheduler, name) and getattr(scheduler, name) != value
    }


def follow(scheduler: Any, settings: dict[str, Any]) -> None:
    """Give `scheduler` the new `settings`, keeping its progress (its epoch count).

    A plateau schedule has no formula, only thresholds and counters, so new settings simply apply.
    A schedule with a closed form (cosine, step, exponential...) restarts from the rate the new
    settings give at this epoch. Any other (OneCycleLR precomputes its phases from total_steps;
    LambdaLR runs user code) cannot follow: refused rather than silently misstepped.
    """
    changed = changed_settings(scheduler, settings)
    if not changed:
        return
    if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and (
        closed_form_rates(scheduler) is None
    ):
        what = ", ".join(f"{name} {old} -> {new}" for name, (old, new) in changed.items())
        raise UserError(
            f"the resumed run's scheduler ({type(scheduler).__name__}) cannot follow new settings ({what}); "
            "resume with the settings the run started with, or start a new run (ckpt_path=PATH)"
        )
    for name, (_, value) in changed.items():
        setattr(scheduler, name, value)
    rates = closed_form_rates(scheduler)
    if rates is not None:
        set_scheduler_rates(scheduler, rates)


class FollowNewSchedule(Callback):
    """On a resume, the task's scheduler factory's settings go onto the restored schedulers."""

    def __init__(self) -> None:
        self._resuming = False

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: Any) -> None:
        self._resuming = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        resuming, self._resuming = self._resuming, False
        factory = getattr(pl_module, "scheduler_factory", None)
        if not resuming or factory is None:
            return
        for config in trainer.lr_scheduler_configs:
            follow(config.scheduler, dict(getattr(factory, "keywords", {})))
