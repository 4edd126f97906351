"""`MidEpochCheckpoint`: `last.ckpt` refreshed inside long epochs, every so many minutes or steps."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from rnnlab.errors import UserError


class MidEpochCheckpoint(Callback):
    """Saves `<dirpath>/last.ckpt` after the training batch in which `train_time_interval` has passed
    since the last save, or in which the optimiser step count crossed a multiple of
    `every_n_train_steps`. The run's main checkpoint callback writes the same file at epoch ends.

    The steps are counted by crossing, not by `global_step % n == 0` (as Lightning's `ModelCheckpoint`
    does): a loader batch holds several optimiser steps (`data.windows_per_batch`), and an epoch's
    last batch may hold fewer, so the step count after a batch is rarely a multiple of n. Under
    data-parallel training rank 0's clock decides for every process.

    Nothing is saved when training ends (the main callback has saved then).
    """

    def __init__(
        self,
        dirpath: str,
        train_time_interval: timedelta | None = None,
        every_n_train_steps: int | None = None,
        filename: str = "last",
    ) -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise UserError(
                f"callbacks.mid_epoch_checkpoint.every_n_train_steps={every_n_train_steps} "
                "must be at least 1 (or null)"
            )
        self.path = str(Path(dirpath) / f"{filename}.ckpt")
        self.interval = train_time_interval.total_seconds() if train_time_interval else None
        self.every_n_steps = every_n_train_steps
        self._saved_at = time.monotonic()
        self._steps_before = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._saved_at = time.monotonic()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._steps_before = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        n = self.every_n_steps
        due = bool(n) and trainer.global_step // n > self._steps_before // n
        if self.interval is not None:
            due = trainer.strategy.broadcast(due or time.monotonic() - self._saved_at >= self.interval)
        if due:
            trainer.save_checkpoint(self.path, weights_only=False)
            self._saved_at = time.monotonic()
