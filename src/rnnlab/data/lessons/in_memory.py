"""`InMemoryData`: the base of the datamodules whose splits are small tensors held in memory."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from rnnlab.contract import InputKind, TaskInputs
from rnnlab.errors import UserError

Split = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets), first dimension = examples


class InMemoryData(L.LightningDataModule):
    """Train / val / test as (inputs, targets) tensors, batched by an ordinary DataLoader.

    A subclass sets `input_kind` and implements `load()` (and, if it downloads, `prepare_data()`).
    The training order is shuffled from `seed`; under data-parallel training each process gets its
    own share through a `DistributedSampler` (rnnlab turns Lightning's automatic one off, because the
    language model's stream samplers shard themselves).
    """

    input_kind: InputKind
    hands_over: type[TaskInputs] = TaskInputs

    def __init__(self, batch_size: int, eval_batch_size: int | None = None, seed: int = 0) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and value < 1:
                raise UserError(f"data.{name}={value} must be positive")
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size or batch_size, seed
        self.splits: dict[str, Split] = {}

    def load(self) -> dict[str, Split]:
        """The three splits: {"train": (x, y), "val": (x, y), "test": (x, y)}."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits:  # rnnlab calls setup before Lightning does, to size the network
            return
        splits = self.load()
        for name in ("train", "val", "test"):
            if len(splits[name][0]) == 0:
                raise UserError(f"the {name} split of {type(self).__name__} is empty; use more data")
        self.splits = splits

    # -- what the network and the task are told -------------------------------------------------
    def network_sizes(self) -> dict[str, Any]:
        """Keyword arguments that size the network for this data (`input_size`, `output_size`)."""
        raise NotImplementedError

    def task_inputs(self) -> TaskInputs:
        """What the task needs from the data (e.g. class names), as the `hands_over` class."""
        return TaskInputs()

    # -- batches --------------------------------------------------------------------------------
    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = TensorDataset(*self.splits[split])
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            sampler = DistributedSampler(
                dataset, trainer.world_size, trainer.global_rank, shuffle=shuffle, seed=self.seed
            )
            return DataLoader(dataset, batch_size=batch_size, sampler=sampler)
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)
