"""`SequenceTask`: training on streams of windows, with a carried hidden state and truncated BPTT."""

from __future__ import annotations

from typing import Any

import torch

from rnnlab.errors import UserError
from rnnlab.tasks.base import Task


def detach(state: Any) -> Any:
    """Cut the graph behind a hidden state (a tensor, an LSTM's (h, c) pair, or None)."""
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return tuple(part.detach() for part in state)


class SequenceTask(Task):
    """Per-step predictions from a recurrent network that maps (inputs, state) to (outputs, state).

    Each batch of T steps is cut into pieces of `tbptt_steps` (default: the whole batch), and every
    piece gets its own backward pass and optimiser step, with the state detached between pieces
    (Lightning's documented pattern for truncated BPTT since 2.0). When `carry_state` is true (the
    data's batches continue each other, e.g. sequential partitioning) the state also carries from
    batch to batch, and starts from zero at every epoch; otherwise every batch starts from zero.
    Validation and test read their streams with a state of their own.

    Subclasses give the loss and the metric bookkeeping.
    """

    def __init__(self, *args: Any, tbptt_steps: int | None = None, carry_state: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if tbptt_steps is not None and tbptt_steps < 1:
            raise UserError(f"task.tbptt_steps={tbptt_steps} must be at least 1 (or null for whole batches)")
        self.tbptt_steps, self.carry_state = tbptt_steps, carry_state
        self.train_state: Any = None
        self.eval_state: Any = None

    def setup(self, stage: str) -> None:
        num_steps = getattr(self.trainer.datamodule, "num_steps", None)
        tbptt = self.tbptt_steps
        if stage == "fit" and tbptt is not None and num_steps is not None and tbptt > num_steps:
            raise UserError(
                f"task.tbptt_steps={tbptt} is longer than a training sequence (data.num_steps={num_steps}); "
                f"use at most {num_steps}"
            )

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.train_state = None

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        state = self.train_state if self.carry_state else None
        piece = self.tbptt_steps or inputs.size(1)
        for x, y in zip(inputs.split(piece, dim=1), targets.split(piece, dim=1), strict=True):
            outputs, state = self.network(x, state)
            loss = self.loss(outputs, y)
            self.optimise(loss, batch_idx)
            state = detach(state)
            loss = loss.detach()
            self.update_metrics("train", outputs.detach(), y, loss)
        self.train_state = state
        self.count(targets.numel())
        if self.logs_this_step():
            self.log_dict(self.step_metrics(loss), prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.eval_state = None

    def on_test_epoch_start(self) -> None:
        self.eval_state = None

    def evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        outputs, self.eval_state = self.network(inputs, self.eval_state)
        self.update_metrics(stage, outputs, targets, self.loss(outputs, targets))
        return outputs
