"""`SineData`: Udacity's sine-wave lesson as consecutive windows of one long curve."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from rnnlab.contract import InputKind, StreamInputs
from rnnlab.data.position import TrainingPosition
from rnnlab.data.streams import SequentialPartition, shard_of, window_loader
from rnnlab.errors import UserError


class SineData(TrainingPosition, L.LightningDataModule):
    """sin(t) sampled `num_steps` times per half period; window k covers [k*pi, (k+1)*pi].

    As in the lesson, window k's inputs are its first `num_steps` points and its targets the same
    shifted by one, and window k+1 starts where window k ends, so a hidden state carried from one
    window to the next has read the curve before it. The curve after the `train_windows` training
    windows is held out: the next `val_windows` for validation, then `test_windows` for test.
    """

    input_kind = InputKind.SEQUENCES
    hands_over = StreamInputs

    def __init__(
        self,
        num_steps: int = 20,
        batch_size: int = 1,
        train_windows: int = 75,
        val_windows: int = 10,
        test_windows: int = 10,
    ) -> None:
        super().__init__()
        for name in ("num_steps", "batch_size", "train_windows", "val_windows", "test_windows"):
            if locals()[name] < 1:
                raise UserError(f"data.{name}={locals()[name]} must be at least 1")
        for name in ("train_windows", "val_windows", "test_windows"):
            if locals()[name] % batch_size:
                raise UserError(
                    f"data.{name}={locals()[name]} must be a multiple of data.batch_size={batch_size} "
                    "(each batch row reads its own stretch of the curve)"
                )
        self.num_steps, self.batch_size = num_steps, batch_size
        self.windows = {"train": train_windows, "val": val_windows, "test": test_windows}
        self.curves: dict[str, torch.Tensor] = {}

    def network_sizes(self) -> dict[str, int]:
        return {"input_size": 1, "output_size": 1}

    has_test_split = True  # rnnlab.contract.DataContract

    def summary(self) -> dict[str, Any]:
        """Nothing for metrics.json beyond the metrics (`rnnlab.contract.DataContract`)."""
        return {}

    def task_inputs(self) -> StreamInputs:
        return StreamInputs(num_steps=self.num_steps, carry_state=True)

    def setup(self, stage: str | None = None) -> None:
        if self.curves:
            return
        start = 0
        for split, windows in self.windows.items():
            points = torch.arange(start, start + windows * self.num_steps + 1, dtype=torch.float64)
            # float64 before the sine so that far-out windows are as exact as the first ones
            self.curves[split] = torch.sin(points * math.pi / self.num_steps).float()[:, None]
            start += windows * self.num_steps

    def _sampler(self, split: str) -> SequentialPartition:
        return SequentialPartition(
            len(self.curves[split]),
            self.batch_size,
            self.num_steps,
            random_offset=False,
            **shard_of(self.trainer),
        )

    def _loader(self, split: str) -> DataLoader:
        return window_loader(self.curves[split], self._sampler(split))

    def train_dataloader(self) -> DataLoader:
        return window_loader(self.curves["train"], self.resumable(self._sampler("train")))

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
