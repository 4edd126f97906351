"""`SequenceTask`: training on streams of windows, with a carried hidden state and truncated BPTT."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from rnnlab.contract import StreamInputs
from rnnlab.errors import UserError
from rnnlab.lightning_internals import (
    attached_trainer,
    callbacks_override,
    count_optimizer_step,
    module_overrides,
    precision_is_plain,
)
from rnnlab.lr_schedules import is_per_step
from rnnlab.models.regularisation import run_with_penalty
from rnnlab.tasks.base import Task


def mean_loss(losses: list[torch.Tensor], lengths: list[int]) -> torch.Tensor:
    """The token-weighted mean of pieces' mean losses, `lengths[i]` time steps each: on an
    accelerator two kernel launches when the pieces are equally long (the usual case), not two per piece."""
    if len(set(lengths)) == 1:
        return torch.stack(losses).mean()
    return sum(loss * n for loss, n in zip(losses, lengths, strict=True)) / sum(lengths)


def detach(state: Any) -> Any:
    """Cut the graph behind a hidden state (a tensor, an LSTM's (h, c) pair, or None; or tuples of
    them, such as a token-shifting network's (recurrent state, last input))."""
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return tuple(detach(part) for part in state)


# The hooks that Lightning's backward and optimizer wrappers call and the plain path does not (the
# task's own `on_before_backward`, the non-finite guard, it calls itself).
HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


class SequenceTask(Task):
    """Per-step predictions from a recurrent network that maps (inputs, state) to (outputs, state).

    A loader batch holds one or more windows of `num_steps` (`data.windows_per_batch`, side by side
    along time). Each window is cut into pieces of `tbptt_steps` (default: the whole window), and
    every piece gets its own backward pass and optimiser step, with the state detached between pieces
    (Lightning's documented pattern for truncated BPTT since 2.0, which needs manual optimisation).
    When the data's windows continue each other (`inputs.carry_state`, e.g. sequential
    partitioning) the state also carries from window to window, and starts from zero at every epoch;
    otherwise every window starts from zero. Validation and test read their streams with a state of
    their own.

    Subclasses give the loss and the metric bookkeeping.
    """

    takes: ClassVar[type[StreamInputs]] = StreamInputs
    adds_penalty: ClassVar[bool] = True
    # False: the training metrics need only the loss, so `update_metrics` gets a whole loader batch
    # at once (its mean loss, outputs None) rather than every piece: a metric update costs about as
    # much as a small network's optimiser step does in Python.
    metrics_read_outputs: ClassVar[bool] = True

    def __init__(self, *args: Any, tbptt_steps: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        num_steps = self.inputs.num_steps
        if self.loss_reduction != "mean":
            raise UserError("task.loss_reduction=sum is for tasks on independent examples; streams use mean")
        if tbptt_steps is not None and tbptt_steps < 1:
            raise UserError(f"task.tbptt_steps={tbptt_steps} must be at least 1 (or null for whole batches)")
        if tbptt_steps is not None and tbptt_steps > num_steps:
            raise UserError(
                f"task.tbptt_steps={tbptt_steps} is longer than a training sequence "
                f"(data.num_steps={num_steps}); use at most {num_steps}"
            )
        self.automatic_optimization = False
        self.tbptt_steps, self.carry_state = tbptt_steps, self.inputs.carry_state
        self.train_state: Any = None
        self.eval_state: Any = None
        self.plain_step = False  # decided when training starts (`on_train_start`)
        self.step_schedule: Any = None  # a schedule stepped after every optimiser step (`on_train_start`)
        self.log_rate = False  # whether the step metrics carry the rate (`on_train_start`)

    def items_in(self, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        return batch[1].numel()  # every step of every row is a prediction

    def on_train_epoch_start(self) -> None:
        self.train_state = None

    def training_state(self) -> dict[str, Any]:
        return {**super().training_state(), "carried_state": self.train_state}

    def resume_epoch(self, state: dict[str, Any]) -> None:
        super().resume_epoch(state)
        self.train_state = state["carried_state"]

    @property
    def steps_per_batch(self) -> int:
        """Optimiser steps in a full loader batch: one per window, or per truncated-BPTT piece of one."""
        pieces = -(-self.inputs.num_steps // (self.tbptt_steps or self.inputs.num_steps))
        return self.inputs.windows_per_batch * pieces

    def steps_in_epoch(self, trainer: Any) -> int:
        """Exact where the loader says how many windows an epoch holds (its last batch may hold fewer)."""
        sampler = getattr(trainer.train_dataloader, "sampler", None)
        windows = getattr(sampler, "num_windows", None)
        if windows is None or trainer.num_training_batches < len(sampler):
            return super().steps_in_epoch(trainer)
        return windows * (self.steps_per_batch // self.inputs.windows_per_batch)

    def on_train_start(self) -> None:
        super().on_train_start()
        # One process without loss scaling, and no callback listening to the backward or the step:
        # Lightning's backward, clipping and optimizer wrappers would then add only hook calls to
        # plain PyTorch, which a small network's step pays for on every piece. Under DDP (which
        # prepares every manual backward), fp16 (loss scaling) or such a callback, Lightning's path.
        trainer = self.trainer
        self.plain_step = (
            trainer.world_size == 1
            and precision_is_plain(trainer)
            and not callbacks_override(trainer, HOOKS)
            and not module_overrides(self, HOOKS[1:])  # the task's own guard is called by the plain path
        )
        # What is clipped: the optimiser's parameters, listed once (walking the module tree for them
        # on every step costs a small network a measurable share of its step)
        self._clipped = [p for group in trainer.optimizers[0].param_groups for p in group["params"]]
        scheduler = self.lr_schedulers()
        self.step_schedule = scheduler if is_per_step(scheduler) else None
        self.log_rate = self.rate_varies_within_epochs

    def optimise(self, loss: torch.Tensor) -> None:
        """One optimiser step on `loss` (a piece of a batch): backward (guarded), clip, step (at the
        warmup's share of the rate), then a per-step schedule's step."""
        if self.plain_step:
            optimizer = self.optimizers().optimizer
            optimizer.zero_grad(set_to_none=True)
            self.on_before_backward(loss)  # the non-finite guard
            loss.backward()
            if self.clip_val is not None:
                torch.nn.utils.clip_grad_norm_(self._clipped, self.clip_val)
            rates = self.warm_up(optimizer)
            optimizer.step()
            self.cool_down(optimizer, rates)
            count_optimizer_step(self.trainer)  # what Lightning's optimizer wrapper does besides the step
        else:
            optimizer = self.optimizers()
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            self.configure_gradient_clipping(optimizer)
            rates = self.warm_up(optimizer.optimizer)
            optimizer.step()  # Lightning's wrapper: its hooks, and it counts the step
            self.cool_down(optimizer.optimizer, rates)
        if self.step_schedule is not None:
            self.step_schedule.step()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """A loader batch holds one or more windows of `num_steps` side by side (`data.windows_per_batch`);
        each window is cut into pieces of `tbptt_steps`, and every piece is one optimiser step."""
        inputs, targets = batch
        state = self.train_state
        piece = self.tbptt_steps or self.inputs.num_steps
        trainer = attached_trainer(self)
        max_steps = trainer.max_steps if trainer is not None else -1
        losses, lengths = [], []  # for metrics that read the losses only: one update per batch
        for window, window_targets in zip(
            inputs.split(self.inputs.num_steps, dim=1),
            targets.split(self.inputs.num_steps, dim=1),
            strict=True,
        ):
            if not self.carry_state:
                state = None  # windows in random order: each starts from zero
            for x, y in zip(window.split(piece, dim=1), window_targets.split(piece, dim=1), strict=True):
                if max_steps != -1 and self.global_step >= max_steps:
                    break  # Lightning checks trainer.max_steps between batches; a batch holds several steps
                outputs, state, penalty = run_with_penalty(self.network, x, state)
                loss = self.loss(outputs, y)
                self.optimise(loss if penalty is None else loss + penalty)  # the metrics leave AR/TAR out
                state = detach(state)
                loss = loss.detach()
                if self.metrics_read_outputs:
                    self.update_metrics("train", outputs.detach(), y, loss)
                else:
                    losses.append(loss)
                    lengths.append(y.shape[1])
        if losses:
            # the batch's token-weighted mean loss, for the targets scored (all, unless max_steps hit)
            self.update_metrics("train", None, targets[:, : sum(lengths)], mean_loss(losses, lengths))
        self.train_state = state
        if self.logs_this_step():
            self.log_at_step({**self.step_metrics(loss), **(self.rate_metrics() if self.log_rate else {})})
        return loss

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        # Manual optimisation: Lightning leaves the schedulers to the task.
        scheduler = self.lr_schedulers()
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            # Only on this epoch's validation, as Lightning does for the other tasks: not on a stale one.
            val = self.trainer.callback_metrics.get(f"val/{self.metric}")
            if val is not None and self.validated_epoch == self.current_epoch:
                scheduler.step(val)
        elif scheduler is not None and not is_per_step(scheduler):
            scheduler.step()

    def on_validation_epoch_start(self) -> None:
        self.eval_state = None

    def on_test_epoch_start(self) -> None:
        self.eval_state = None

    def evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        state = self.eval_state if self.inputs.eval_carries_state else None  # fresh windows: from zero
        outputs, self.eval_state = self.network(inputs, state)
        self.update_metrics(stage, outputs, targets, self.loss(outputs, targets))
        return outputs
