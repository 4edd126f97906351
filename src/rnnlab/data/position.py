"""Where training stands in an epoch, saved in checkpoints, so that a run resumes at the next batch.

Lightning saves a datamodule's `state_dict()` in every full checkpoint and hands it back through
`load_state_dict()` before it asks for the training loader. `TrainingPosition` (a datamodule mixin)
saves the epoch and how many of its batches have been trained on, and gives that position to the
next training sampler it builds (`resumable`), which skips those batches once.

The count is Lightning's own (`batches_done_this_epoch`: batches whose training step ran), not
what the loader has yielded: Lightning fetches one batch ahead, so a sampler counting its own
output would be one ahead at every save.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, TypeVar

from torch.utils.data import Dataset, DistributedSampler


class ResumableSampler(Protocol):
    def resume_at(self, epoch: int, batches_done: int) -> None: ...


S = TypeVar("S", bound=ResumableSampler)


class ResumesOnce:
    """Sampler mixin: `resume_at(epoch, batches_done)` makes the next pass over `epoch` start after
    those batches, once; any other epoch, and every later pass, starts from the first batch."""

    epoch: int
    _resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, batches_done: int) -> None:
        self._resume = (epoch, batches_done)

    def batches_to_skip(self) -> int:
        """For the pass now starting (call once per pass)."""
        resume, self._resume = self._resume, None
        return resume[1] if resume is not None and resume[0] == self.epoch else 0


class TrainingPosition:
    """Mixin for a `LightningDataModule`: the training position as the datamodule's checkpoint state."""

    trainer: Any
    _position: tuple[int, int] | None = None

    def state_dict(self) -> dict[str, int]:
        trainer = self.trainer
        if trainer is None:
            return {}
        # imported here: the samplers (this module) are used without lightning (benchmarks/plain_loop.py)
        from rnnlab.lightning_internals import batches_done_this_epoch

        return {"epoch": trainer.current_epoch, "batches_done": batches_done_this_epoch(trainer)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._position = (state["epoch"], state["batches_done"]) if state else None

    def resumable(self, sampler: S) -> S:
        """`sampler`, told where a resumed run stopped (if this run resumes)."""
        if self._position is not None:
            sampler.resume_at(*self._position)
            self._position = None
        return sampler


class ShuffledExamples(ResumesOnce, DistributedSampler):
    """Independent examples in an order drawn from (seed, epoch); this process's share under DDP.

    `DistributedSampler`'s order and sharding (one process: every example), plus `resume_at`.
    """

    def __init__(
        self, dataset: Dataset, batch_size: int, num_replicas: int = 1, rank: int = 0, seed: int = 0
    ) -> None:
        super().__init__(dataset, num_replicas, rank, shuffle=True, seed=seed)
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[int]:
        skip = self.batches_to_skip() * self.batch_size
        return iter(list(super().__iter__())[skip:])
