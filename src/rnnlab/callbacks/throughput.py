"""`StepClock`: wall-clock facts about training steps, for the benchmark."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class StepClock(Callback):
    """Steady-state training throughput, and when the first optimiser step finished.

    Tokens/s are timed from the start of step `warmup_steps` to the end of the epoch's last step,
    so start-up, warm-up and validation stay out of the figure. With `first_step_file`, the Unix
    time at which the first training step ended is written there (start-up benchmark).
    """

    def __init__(self, warmup_steps: int = 5, first_step_file: str | None = None) -> None:
        self.warmup_steps = warmup_steps
        self.first_step_file = first_step_file
        self.tokens_per_s: float | None = None
        self._started = 0.0
        self._tokens = 0

    @staticmethod
    def _sync(pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == self.warmup_steps:
            self._sync(pl_module)
            self._started, self._tokens = time.perf_counter(), 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.first_step_file and trainer.global_step >= 1:
            Path(self.first_step_file).write_text(repr(time.time()))
            self.first_step_file = None
        if batch_idx < self.warmup_steps:
            return
        self._tokens += batch[1].numel()
        if batch_idx == trainer.num_training_batches - 1:
            self._sync(pl_module)
            self.tokens_per_s = self._tokens / (time.perf_counter() - self._started)
