"""`NonFiniteGuard`: training stops, in one line, when the loss stops being a finite number, and no
checkpoint is ever written of weights that such a loss reached.

What holds, exactly:

- On the CPU the loss of every optimiser step is read before its backward pass: training stops
  at the first non-finite loss, before it reaches the weights.
- On an accelerator, reading a loss makes the host wait for the device, which at every step would
  cost a small network a large share of its speed. There a non-finite loss only sets a flag on the
  device, together with its step and value: no host sync. The flag is read when the step metrics
  are logged anyway (every `trainer.log_every_n_steps`), before every checkpoint is written, before
  a validation and when training ends. Up to one logging interval of steps may then run on the bad
  weights, but no checkpoint holds them, and the error names the first bad step.

Either way the run stops with the same `TrainingDiverged` error; the checkpoints written before
the first bad step are kept.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rnnlab.errors import UserError


class TrainingDiverged(UserError):
    """The loss stopped being a finite number."""


class NonFiniteGuard:
    """Watches the losses of the optimiser steps; `check()` raises `TrainingDiverged` if one was bad.

    `describe(step, value)` writes the error's text (the task names its learning rate and clipping).
    `every_step` is None to decide by the loss's device (read at every step on the CPU only); tests
    set it to False to run the accelerator's deferred path on a CPU.
    """

    def __init__(self, describe: Callable[[int, float], str] | None = None) -> None:
        self.describe = describe or (lambda step, value: f"the loss became {value} at step {step}")
        self.every_step: bool | None = None
        self._first_bad: torch.Tensor | None = None  # on the loss's device: the first bad step, or -1
        self._bad_value: torch.Tensor | None = None

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Look at the loss of optimiser step `step` (counted from 1), before its backward pass."""
        loss = loss.detach()
        every_step = self.every_step if self.every_step is not None else loss.device.type == "cpu"
        if every_step:
            if not torch.isfinite(loss):
                raise TrainingDiverged(self.describe(step, loss.item()))
            return
        if self._first_bad is None:
            self._first_bad = loss.new_full((), -1, dtype=torch.long)  # on the loss's device
            self._bad_value = loss.new_zeros(())
        first = ~torch.isfinite(loss) & (self._first_bad < 0)
        self._first_bad = torch.where(first, step, self._first_bad)
        self._bad_value = torch.where(first, loss, self._bad_value)

    def check(self) -> None:
        """Raise `TrainingDiverged` if a loss seen so far was not finite (off the CPU: a host sync)."""
        if self._first_bad is None:
            return
        step = int(self._first_bad)
        if step >= 0:
            raise TrainingDiverged(self.describe(step, float(self._bad_value)))
