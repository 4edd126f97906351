"""`Budget`: the run's limits as one budget that the run plans for, stops at, and validates at.

The budget is whichever of `trainer.max_time` (wall time), `trainer.max_steps` (optimiser steps) and
`trainer.max_epochs` ends the run first. This callback

- counts the wall time spent training (from the start of training, validations inside it included,
  as Lightning's own `Timer` does), and stops the run after the batch in which it reaches `max_time`
  (rnnlab takes `max_time` from Lightning, so that one clock both stops the run and drives the
  schedule);
- gives a `BudgetSchedule` (`scheduler=budget`) the fraction of the budget spent, so that its rate
  reaches its end value when training stops;
- makes every stop a validated one: a stop inside an epoch (max_time, max_steps) or at the end of
  the last epoch asks Lightning to stop (`trainer.should_stop`), and Lightning validates before it
  stops, so the run ends with a validation number and the checkpoint of it (whatever the
  validation cadence, `trainer.val_check_interval`);
- keeps the time spent in the checkpoints (`state_dict`), so a resumed run has only what was left.

The clock is a parameter (`time.monotonic` by default), so that tests drive it by hand. Under
data-parallel training rank 0's clock decides for every process, read once per loader batch.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from rnnlab.errors import UserError
from rnnlab.lr_schedules import BudgetSchedule

DURATION = re.compile(r"(\d+):(\d\d):(\d\d):(\d\d)")


def budget_seconds(max_time: Any) -> float | None:
    """`trainer.max_time` in seconds: "DD:HH:MM:SS" (Lightning's form), a dict of timedelta's
    arguments ({minutes: 5}), a timedelta, or null (no wall-time limit)."""
    if max_time is None:
        return None
    if isinstance(max_time, timedelta):
        seconds = max_time.total_seconds()
    elif isinstance(max_time, str) and DURATION.fullmatch(max_time.strip()):
        days, hours, minutes, secs = (int(part) for part in DURATION.fullmatch(max_time.strip()).groups())
        seconds = timedelta(days=days, hours=hours, minutes=minutes, seconds=secs).total_seconds()
    elif isinstance(max_time, dict) or hasattr(max_time, "items"):
        try:
            seconds = timedelta(**dict(max_time)).total_seconds()
        except TypeError as error:
            raise UserError(f"trainer.max_time={dict(max_time)}: {error}; use e.g. {{minutes: 5}}") from None
    else:
        raise UserError(
            f"trainer.max_time={max_time!r} is not a duration; give DD:HH:MM:SS (e.g. 00:00:30:00), "
            "or null for no wall-time limit"
        )
    if seconds <= 0:
        raise UserError(f"trainer.max_time={max_time} must be longer than 0 (or null for no limit)")
    return seconds


class Budget(Callback):
    """Stops the run at `max_time_s` seconds of training, validates at every stop, and tells budget
    schedules how much of the budget is spent (see the module's docstring)."""

    def __init__(self, max_time_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_time_s, self.clock = max_time_s, clock
        self._offset = 0.0  # seconds spent before this process started training (a resumed run's)
        self._since: float | None = None  # the clock when this process started training
        self._time_fraction = 0.0  # the share of max_time spent, read at the start of each batch
        self._schedules: list[BudgetSchedule] = []

    # -- the time spent -----------------------------------------------------------------------------
    def spent_s(self) -> float:
        """Seconds spent training, this run's earlier parts included."""
        return self._offset + (0.0 if self._since is None else self.clock() - self._since)

    def read_clock(self, trainer: L.Trainer) -> None:
        """The share of `max_time` spent, as rank 0's clock says (one reading for all processes)."""
        if self.max_time_s is None:
            return
        fraction = self.spent_s() / self.max_time_s
        self._time_fraction = trainer.strategy.broadcast(fraction) if trainer.world_size > 1 else fraction

    def fraction_spent(self, trainer: L.Trainer, pl_module: L.LightningModule) -> float:
        """The share of the budget spent, in [0, 1]: the largest of the shares of `max_time` (as of
        this batch's start), of `max_steps` and of `max_epochs` (in optimiser steps)."""
        step = trainer.global_step
        shares = [self._time_fraction]
        if trainer.max_steps is not None and trainer.max_steps > 0:
            shares.append(step / trainer.max_steps)
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            steps_in_epoch = getattr(pl_module, "steps_in_epoch", None)
            per_epoch = steps_in_epoch(trainer) if steps_in_epoch else trainer.num_training_batches
            if 0 < per_epoch < float("inf"):
                shares.append(step / (trainer.max_epochs * per_epoch))
        return min(1.0, max(shares))

    # -- hooks --------------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._since = self.clock()
        self.read_clock(trainer)
        self._schedules = [
            config.scheduler
            for config in trainer.lr_scheduler_configs
            if isinstance(config.scheduler, BudgetSchedule)
        ]
        for schedule in self._schedules:  # a resumed run's schedule goes on from the budget it has left
            schedule.follow(lambda: self.fraction_spent(trainer, pl_module))

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.read_clock(trainer)
        for schedule in self._schedules:  # the time spent moves the rate once a batch (steps: each step)
            schedule.refresh()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        out_of_time = self.max_time_s is not None and self.spent_s() >= self.max_time_s
        if trainer.world_size > 1 and self.max_time_s is not None:
            out_of_time = trainer.strategy.broadcast(out_of_time)
        out_of_steps = trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step
        last_epoch = trainer.max_epochs is not None and 0 < trainer.max_epochs <= trainer.current_epoch + 1
        last_batch = last_epoch and batch_idx + 1 >= trainer.num_training_batches
        if out_of_time or out_of_steps or last_batch:
            # Lightning validates after a batch that asks it to stop, whatever the cadence, and the
            # checkpoint callback saves that validation.
            trainer.should_stop = True
            if out_of_time:
                self._time_fraction = 1.0
                rank_zero_info(
                    f"`Trainer.fit` stopped: `max_time` reached ({self.spent_s():.0f} s of "
                    f"{self.max_time_s:.0f} s, step {trainer.global_step}); validating at the stop"
                )
            for schedule in self._schedules:  # the rate at the stop is the schedule's end value
                schedule.refresh()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._offset, self._since = self.spent_s(), None

    # -- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"spent_s": self.spent_s()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._offset, self._since = float(state_dict["spent_s"]), None
