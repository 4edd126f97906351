"""Learning-rate schedules laid over a run's budget, and the warmup ramp every schedule can have.

`BudgetSchedule` (`scheduler=budget`) decays the rate as the budget is spent: the budget is whichever
of `trainer.max_time`, `trainer.max_steps` and `trainer.max_epochs` ends the run first, and the
fraction spent comes from `rnnlab.callbacks.budget.Budget`, which stops the run at that same point.
So the rate reaches its end value exactly when training stops, whatever the machine's speed.

`warmup_factor` is the linear warmup (`scheduler.warmup_steps`): step s of the first N may take at most
(s+1)/N of the peak rate. The task applies it around each optimiser step, on top of any schedule
(cosine, plateau, budget), so the schedules themselves never see it (`Task.warmed_up_rate`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from rnnlab.errors import UserError
from rnnlab.lightning_internals import set_scheduler_rates

DECAYS = ("cosine", "linear", "constant")


def decay_factor(decay: str, fraction: float, end_factor: float) -> float:
    """The share of the peak rate at `fraction` of the budget (clamped to [0, 1]): 1 at the start,
    `end_factor` at the end, along a half cosine or a straight line (`constant`: 1 throughout)."""
    fraction = min(max(fraction, 0.0), 1.0)
    if decay == "cosine":
        return end_factor + (1.0 - end_factor) * 0.5 * (1.0 + math.cos(math.pi * fraction))
    if decay == "linear":
        return end_factor + (1.0 - end_factor) * (1.0 - fraction)
    return 1.0


def warmup_factor(step: int, warmup_steps: int) -> float:
    """The share of the peak rate that optimiser step `step` (0 for the first) may take: (step+1)/N
    for the first N steps, then 1."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return (step + 1) / warmup_steps


def check_warmup_steps(warmup_steps: Any) -> int:
    if not isinstance(warmup_steps, int) or isinstance(warmup_steps, bool) or warmup_steps < 0:
        raise UserError(f"scheduler.warmup_steps={warmup_steps} must be a whole number, 0 (none) or more")
    return warmup_steps


class BudgetSchedule(LRScheduler):
    """The rate as a function of the fraction of the budget spent: `decay` (cosine, linear or
    constant) from the optimiser's rate down to `end_factor` times it. Stepped after every optimiser
    step. The fraction comes from `follow(fraction)` (the `Budget` callback binds it when training
    starts); until then it is 0. The rate depends on nothing else, so a resumed run, or one resumed
    with new settings (`FollowNewSchedule`), continues from the budget it has left.
    """

    per_step = True  # stepped by the task after every optimiser step, not at epoch ends

    def __init__(
        self, optimizer: torch.optim.Optimizer, decay: str = "cosine", end_factor: float = 0.1
    ) -> None:
        if decay not in DECAYS:
            raise UserError(f"scheduler.decay={decay!r} is unknown; choose one of {', '.join(DECAYS)}")
        if not 0 <= end_factor <= 1:
            raise UserError(f"scheduler.end_factor={end_factor} must be in [0, 1] (a share of optimizer.lr)")
        self.decay, self.end_factor = decay, end_factor
        self._fraction: Callable[[], float] = lambda: 0.0
        super().__init__(optimizer)

    def follow(self, fraction: Callable[[], float]) -> None:
        """Read the fraction of the budget spent from `fraction`, and set the rates it gives now."""
        self._fraction = fraction
        self.refresh()

    def refresh(self) -> None:
        """Set the optimiser's rates to what the fraction spent gives now (without a step)."""
        set_scheduler_rates(self, self.get_lr())

    def get_lr(self) -> list[float]:
        factor = decay_factor(self.decay, self._fraction(), self.end_factor)
        return [base * factor for base in self.base_lrs]

    def rates_now(self) -> list[float]:
        """What FollowNewSchedule asks a schedule with a formula for: the rates its settings give now."""
        return self.get_lr()

    def state_dict(self) -> dict[str, Any]:
        """Plain data only (not the bound fraction): checkpoints load with `weights_only=True`."""
        return {key: value for key, value in super().state_dict().items() if key != "_fraction"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        fraction = self._fraction
        super().load_state_dict(state_dict)
        self._fraction = fraction


def is_per_step(scheduler: Any) -> bool:
    """Whether `scheduler` is stepped after every optimiser step (rather than at epoch ends)."""
    return bool(getattr(scheduler, "per_step", False))
