"""`MidEpochCheckpoint`: `last.ckpt` refreshed inside long epochs, every so many minutes or steps."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class MidEpochCheckpoint(ModelCheckpoint):
    """Lightning's `ModelCheckpoint` with `save_top_k=0, save_last=True` (set `train_time_interval` or
    `every_n_train_steps`), which leaves the epoch ends to the run's main checkpoint callback.

    It does not save when training ends: `ModelCheckpoint` would, if it had not saved yet (a run
    shorter than the interval), and that checkpoint, taken after the last epoch was closed, resumes
    an epoch late in Lightning 2.6 when `trainer.max_epochs` is raised.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(save_top_k=0, save_last=True, save_on_train_epoch_end=False, **kwargs)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass
