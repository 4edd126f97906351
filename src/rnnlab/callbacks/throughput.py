"""`Throughput`: training items per second, per epoch; also when the first optimiser step finished."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class Throughput(Callback):
    """Times the training steps of every epoch and logs `train/<unit>_per_s` at its end.

    The unit and the count come from the task (`throughput_unit`, `items_in(batch)`: tokens,
    points or examples). The clock runs from the start of step `warmup_steps` of the epoch to the
    end of its last step and stops while a validation inside the epoch runs, so start-up and
    validation stay out of the figure. Across processes the rate is the sum (items x world size).
    On a GPU it synchronises only where the clock starts and stops, never per step.

    `rates` holds one rate per epoch; with `first_step_file`, the Unix time at which the first
    training step ended is written there (for the start-up benchmark).
    """

    def __init__(self, warmup_steps: int = 0, first_step_file: str | None = None) -> None:
        self.warmup_steps = warmup_steps
        self.first_step_file = first_step_file
        self.rates: list[float] = []
        self._items, self._seconds, self._since = 0, 0.0, None
        self._paused_for_validation = False
        self._seen = 0  # training batches of this epoch that this process ran

    @property
    def last_rate(self) -> float | None:
        return self.rates[-1] if self.rates else None

    def _run(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self._since = time.perf_counter()

    def _pause(self, pl_module: L.LightningModule) -> None:
        if self._since is None:
            return
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)  # so the clock sees finished work
        self._seconds += time.perf_counter() - self._since
        self._since = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._items, self._seconds, self._since, self._seen = 0, 0.0, None, 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # Counted from this process's first batch of the epoch: a resumed epoch starts at a later batch_idx.
        if self._seen == self.warmup_steps:
            self._run(pl_module)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.first_step_file and trainer.global_step >= 1:
            Path(self.first_step_file).write_text(repr(time.time()))
            self.first_step_file = None
        if self._seen >= self.warmup_steps:
            self._items += pl_module.items_in(batch)
        self._seen += 1
        if batch_idx == trainer.num_training_batches - 1:
            self._pause(pl_module)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._paused_for_validation = self._since is not None
        self._pause(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._paused_for_validation:  # validation inside an epoch
            self._run(pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause(pl_module)
        if not self._items or not self._seconds:
            return
        self.rates.append(self._items * trainer.world_size / self._seconds)
        # each process times itself; the run goes as fast as its slowest process
        pl_module.log(
            f"train/{pl_module.throughput_unit}_per_s", self.rates[-1], sync_dist=True, reduce_fx="min"
        )
