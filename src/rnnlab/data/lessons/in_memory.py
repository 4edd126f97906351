"""`InMemoryData`: the base of the datamodules whose splits are small tensors held in memory."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from rnnlab.contract import InputKind, TaskInputs
from rnnlab.data.position import ShuffledExamples, TrainingPosition
from rnnlab.errors import UserError

Split = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets), first dimension = examples


class InMemoryData(TrainingPosition, L.LightningDataModule):
    """Train / val / test as (inputs, targets) tensors, batched by an ordinary DataLoader.

    A subclass sets `input_kind` and implements `load()` (and, if it downloads, `prepare_data()`).
    The training order is shuffled from (`seed`, epoch), so a run resumed mid-epoch sees the batches
    an uninterrupted one would; under data-parallel training each process gets its own share
    (rnnlab turns Lightning's automatic sampler off, because the language model's stream samplers
    shard themselves).
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

    has_test_split = True  # rnnlab.contract.DataContract

    def summary(self) -> dict[str, Any]:
        """Nothing for metrics.json beyond the metrics (`rnnlab.contract.DataContract`)."""
        return {}

    def task_inputs(self) -> TaskInputs:
        """What the task needs from the data (e.g. class names), as the `hands_over` class."""
        return TaskInputs()

    # -- batches --------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        dataset = TensorDataset(*self.splits["train"])
        sampler = ShuffledExamples(dataset, self.batch_size, seed=self.seed, **self._shard())
        return DataLoader(dataset, batch_size=self.batch_size, sampler=self.resumable(sampler))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> DataLoader:
        dataset = TensorDataset(*self.splits[split])
        shard = self._shard()
        sampler = DistributedSampler(dataset, shuffle=False, **shard) if shard["num_replicas"] > 1 else None
        return DataLoader(dataset, batch_size=self.eval_batch_size, sampler=sampler)

    def _shard(self) -> dict[str, int]:
        """This process's share of the examples (all of them in a single process)."""
        trainer = self.trainer
        if trainer is None:
            return {"num_replicas": 1, "rank": 0}
        return {"num_replicas": trainer.world_size, "rank": trainer.global_rank}
