"""`TrialSeededSampler`: an Optuna sampler made again for every trial, seeded by `seed + trial number`.

A seeded sampler's own random draws do not depend on the study's history, so a resumed search, or a
second worker with the same seed, would propose the first trials over again. Seeding each trial by
its number keeps a search reproducible and never repeats a draw. The grid sampler is the exception:
its draw is among the grid points no trial has taken yet, and its seed orders the grid, so it is made
once. Imported only where a search runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optuna.samplers import BaseSampler, GridSampler


class TrialSeededSampler(BaseSampler):
    def __init__(self, make: Callable[[int | None], BaseSampler], seed: int | None) -> None:
        self.make, self.seed = make, seed
        self.inner = make(seed)
        self.per_trial = seed is not None and not isinstance(self.inner, GridSampler)

    def before_trial(self, study: Any, trial: Any) -> None:
        if self.per_trial:
            self.inner = self.make(self.seed + trial.number)
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        # The grid sampler's only step here is `study.stop()` once the grid is done, which works only
        # inside `study.optimize`; the search ends by its own count instead.
        if not isinstance(self.inner, GridSampler):
            self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
