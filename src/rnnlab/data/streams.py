"""The book's two minibatch schemes over one pre-tokenised tensor, as samplers.

A sampler yields `Window`s: where each row of a batch starts and how many steps it spans.
`TokenWindows` turns a window into (inputs, targets) by indexing the token tensor, so a batch
costs one gather, never a Python loop over tokens.

The samplers re-draw their random offset (and order) per epoch in `set_epoch`, which Lightning calls
on a loader's sampler before every epoch, from a generator seeded by (seed, epoch): a run is
reproducible, and a run resumed in the middle of an epoch (`resume_at`) picks up at the batch after
the last one it trained on, exactly as an uninterrupted run would have.

`rank` / `world_size` give each process its own contiguous block of the batch rows, so the rows a
process sees keep continuing each other under data-parallel training.

`WindowGroups` hands several consecutive windows to the training loop as one loader batch, laid side
by side along time; the task cuts them apart again (one optimiser step each, as before). Lightning's
fixed cost per batch is then paid once per group rather than once per window.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from rnnlab.data.position import ResumesOnce
from rnnlab.errors import UserError


class Window(NamedTuple):
    starts: torch.Tensor  # [rows] first token index of each row
    length: int  # time steps


class TokenWindows(Dataset):
    """Inputs are `tokens[start : start + length]`, targets the same shifted by one.

    `tokens` is a tensor (a series of values, or token ids on an accelerator, where the gather then
    runs too) or a numpy array of token ids, possibly memory-mapped (a corpus's `TokenCache`): only
    the rows of the batch are read, and come out as int64 tensors.
    """

    def __init__(self, tokens: torch.Tensor | np.ndarray) -> None:
        self.tokens = tokens

    def __getitem__(self, window: Window | tuple[Window, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        windows = window if isinstance(window, tuple) and not isinstance(window, Window) else (window,)
        device = windows[0].starts.device
        index = torch.cat([w.starts[:, None] + torch.arange(w.length, device=device) for w in windows], dim=1)
        if isinstance(self.tokens, np.ndarray):
            rows = self.tokens[index.numpy()[..., None] + np.arange(2)]  # [B, T, 2]: input, target
            rows = torch.from_numpy(rows.astype(np.int64))
            return rows[..., 0], rows[..., 1]
        inputs, targets = self.tokens[index], self.tokens[index + 1]
        if inputs.is_floating_point():
            return inputs, targets
        return inputs.long(), targets.long()  # ids kept narrower on an accelerator

    def __len__(self) -> int:
        return len(self.tokens)


def shard_of(trainer: Any) -> dict[str, int]:
    """This process's `rank` and the `world_size`, as the samplers take them (none without a trainer)."""
    return {"rank": trainer.global_rank, "world_size": trainer.world_size} if trainer else {}


def window_loader(series: torch.Tensor, sampler: Sampler) -> DataLoader:
    """Batches of `series` as the sampler's windows or groups of them (whole batches: no collation)."""
    return DataLoader(TokenWindows(series), batch_size=None, sampler=sampler)


class WindowGroups(Sampler[tuple[Window, ...]]):
    """`size` consecutive windows of `windows` per loader batch (the last group may hold fewer).

    The windows and their order are the sampler's own; only their packaging changes. The epoch and a
    resumed position pass through, the position counted in groups.
    """

    def __init__(self, windows: _WindowSampler, size: int) -> None:
        self.windows, self.size = windows, size  # size checked by the datamodule (data.windows_per_batch)

    def set_epoch(self, epoch: int) -> None:
        self.windows.set_epoch(epoch)

    def resume_at(self, epoch: int, batches_done: int) -> None:
        self.windows.resume_at(epoch, batches_done * self.size)

    @property
    def num_windows(self) -> int:
        return len(self.windows)

    def __len__(self) -> int:
        return -(-len(self.windows) // self.size)

    def __iter__(self) -> Iterator[tuple[Window, ...]]:
        group: list[Window] = []
        for window in self.windows:
            group.append(window)
            if len(group) == self.size:
                yield tuple(group)
                group = []
        if group:
            yield tuple(group)


def _rows_of_rank(batch_size: int, rank: int, world_size: int) -> slice:
    if batch_size % world_size:
        raise UserError(
            f"data.batch_size={batch_size} does not divide over {world_size} processes; "
            f"use a multiple of {world_size}"
        )
    per_rank = batch_size // world_size
    return slice(rank * per_rank, (rank + 1) * per_rank)


class _WindowSampler(ResumesOnce, Sampler[Window]):
    """What both schemes share: the batch shape, this process's rows, and a per-epoch seed."""

    def __init__(
        self, num_tokens: int, batch_size: int, num_steps: int, seed: int, rank: int, world_size: int
    ) -> None:
        self.num_tokens, self.batch_size, self.num_steps = num_tokens, batch_size, num_steps
        self.rows = _rows_of_rank(batch_size, rank, world_size)
        self.seed = seed
        self.epoch = 0
        # Where the windows' start indices live: the tokens' device, so a batch is gathered there
        # from one copy of the indices per epoch, not one per batch.
        self.device = torch.device("cpu")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)


class SequentialPartition(_WindowSampler):
    """B parallel streams: row i of batch t+1 continues row i of batch t.

    The corpus (after a random offset in [0, num_steps) each epoch, or none for evaluation) is cut
    into `batch_size` equal streams read `num_steps` at a time, so a hidden state carried from one
    batch to the next is the state of the text that precedes it. Every epoch has the same number of
    batches (that of the largest offset), which Lightning's progress and limits rely on.

    `keep_tail` (for evaluation) adds a last, shorter window so that every token of every stream is
    scored.
    """

    def __init__(
        self,
        num_tokens: int,
        batch_size: int,
        num_steps: int,
        seed: int = 0,
        random_offset: bool = True,
        keep_tail: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(num_tokens, batch_size, num_steps, seed, rank, world_size)
        self.random_offset, self.keep_tail = random_offset, keep_tail
        max_offset = num_steps - 1 if random_offset else 0
        self.stream_length = (num_tokens - 1 - max_offset) // batch_size
        if self.stream_length < (1 if keep_tail else num_steps):
            raise UserError(
                f"{num_tokens} tokens are too few for batch_size={batch_size} x num_steps={num_steps} "
                f"(each of the {batch_size} streams needs at least {num_steps + max_offset} tokens); "
                "lower data.batch_size or data.num_steps, or use more text"
            )

    def __len__(self) -> int:
        full, tail = divmod(self.stream_length, self.num_steps)
        return full + int(self.keep_tail and tail > 0)

    def __iter__(self) -> Iterator[Window]:
        offset = 0
        if self.random_offset:
            offset = int(torch.randint(self.num_steps, (1,), generator=self._generator()))
        starts = (offset + torch.arange(self.batch_size)[self.rows] * self.stream_length).to(self.device)
        first = self.batches_to_skip() * self.num_steps
        for step in range(first, len(self) * self.num_steps, self.num_steps):
            yield Window(starts + step, min(self.num_steps, self.stream_length - step))


class RandomWindows(_WindowSampler):
    """Random sampling: non-overlapping windows of `num_steps` tokens in a random order.

    Neighbouring rows and batches are unrelated, so the hidden state starts from zero every batch.
    """

    def __init__(
        self,
        num_tokens: int,
        batch_size: int,
        num_steps: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(num_tokens, batch_size, num_steps, seed, rank, world_size)
        self.num_windows = (num_tokens - 1 - (num_steps - 1)) // num_steps
        if self.num_windows < batch_size:
            raise UserError(
                f"{num_tokens} tokens hold only {max(self.num_windows, 0)} windows of num_steps={num_steps}, "
                f"fewer than data.batch_size={batch_size}; lower either, or use more text"
            )

    def __len__(self) -> int:
        return self.num_windows // self.batch_size

    def __iter__(self) -> Iterator[Window]:
        generator = self._generator()
        offset = int(torch.randint(self.num_steps, (1,), generator=generator))
        order = torch.randperm(self.num_windows, generator=generator)
        starts = (offset + order * self.num_steps).to(self.device)
        batches = starts[: len(self) * self.batch_size].view(len(self), self.batch_size)
        for batch in batches[self.batches_to_skip() :]:
            yield Window(batch[self.rows], self.num_steps)


class FreshWindows(Sampler[Window]):
    """Evaluation in windows that each start from a fresh state (nanoGPT's protocol, with its
    `block_size` as `window`): the split cut into consecutive windows of `window` tokens, every token
    scored once, with at most `window` - 1 tokens of context. Full windows come `batch_size` to a batch;
    the shorter last one, if any, is a batch of its own. Under data-parallel evaluation each process
    takes every `world_size`-th batch.
    """

    def __init__(
        self, num_tokens: int, batch_size: int, window: int, rank: int = 0, world_size: int = 1
    ) -> None:
        scored = num_tokens - 1  # the last token is only a target
        if window > scored:
            raise UserError(
                f"data.eval_num_steps={window} is longer than the {scored} tokens the split scores; "
                "use a shorter window for data.eval_mode=windowed"
            )
        self.batch_size, self.window, self.rank, self.world_size = batch_size, window, rank, world_size
        self.full, self.tail = divmod(scored, window)
        self.device = torch.device("cpu")

    def _batches(self) -> list[Window]:
        starts = torch.arange(self.full) * self.window
        batches = [Window(rows, self.window) for rows in starts.split(self.batch_size)]
        if self.tail:
            batches.append(Window(torch.tensor([self.full * self.window]), self.tail))
        return batches[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self) -> Iterator[Window]:
        for window in self._batches():
            yield Window(window.starts.to(self.device), window.length)
