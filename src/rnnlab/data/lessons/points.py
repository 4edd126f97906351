"""`PointsData`: a handful of (x, y) points, as in the course's linear and logistic regression lessons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rnnlab.contract import ClassInputs, InputKind, TaskInputs
from rnnlab.data.lessons.in_memory import InMemoryData, Split
from rnnlab.errors import UserError


def _column(values: Sequence[float], name: str) -> torch.Tensor:
    try:
        return torch.tensor([float(v) for v in values])[:, None]
    except (TypeError, ValueError):
        raise UserError(f"data.{name}={values!r} must be a list of numbers") from None


class PointsData(InMemoryData):
    """One input feature, one target, batched whole (the lessons use full-batch gradient descent).

    The points are given (`x`, `y`, and optional `val_x`, `val_y` for validation and test; else
    those read the training points), or drawn by `noisy_line`: `points` x values
    `randint(x_range) * x_scale` and y = slope x + intercept + N(0, noise_std^2), a fresh draw for
    each split. With `classes` the targets are class indices (0/1 for the logistic lesson).
    """

    input_kind = InputKind.FEATURES

    def __init__(
        self,
        x: Sequence[float] | None = None,
        y: Sequence[float] | None = None,
        val_x: Sequence[float] | None = None,
        val_y: Sequence[float] | None = None,
        noisy_line: dict[str, Any] | None = None,
        classes: Sequence[str] | None = None,
        batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size or 1, seed=seed)
        self.full_batch = batch_size is None
        if noisy_line is None and (x is None or y is None):
            raise UserError("data=linear needs points: data.x=[...] and data.y=[...], or data.noisy_line")
        self.noisy_line = dict(noisy_line) if noisy_line is not None else None
        self.points = {"train": (x, y), "val": (val_x, val_y)}
        self.classes = list(classes) if classes is not None else None

    def _given(self, split: str) -> Split | None:
        x, y = self.points[split]
        if x is None and y is None:
            return None
        if x is None or y is None or len(x) != len(y) or not len(x):
            prefix = "" if split == "train" else "val_"
            raise UserError(f"data.{prefix}x and data.{prefix}y must be non-empty lists of the same length")
        return _column(x, "x"), _column(y, "y")

    def _draw(self, generator: torch.Generator) -> Split:
        line = {"points": 11, "x_range": (-5, 30), "x_scale": 0.1, "slope": 5.0, "intercept": 30.0}
        line |= {"noise_std": 1.0, **self.noisy_line}
        low, high = line["x_range"]
        x = torch.randint(low, high, (line["points"], 1), generator=generator) * line["x_scale"]
        noise = torch.randn(x.shape, generator=generator) * line["noise_std"]
        return x.float(), (line["slope"] * x + line["intercept"] + noise).float()

    def load(self) -> dict[str, Split]:
        if self.noisy_line is not None:
            generator = torch.Generator().manual_seed(self.seed)
            splits = {split: self._draw(generator) for split in ("train", "val", "test")}
        else:
            train = self._given("train")
            val = self._given("val") or train
            splits = {"train": train, "val": val, "test": val}
        if self.classes is not None:
            for split, (x, y) in splits.items():
                if not all(0 <= v < len(self.classes) and v == int(v) for v in y.flatten().tolist()):
                    raise UserError(
                        f"data.y must hold class indices 0..{len(self.classes) - 1} with data.classes"
                    )
                splits[split] = (x, y.flatten())
        if self.full_batch:
            self.batch_size = self.eval_batch_size = len(splits["train"][0])
        return splits

    def network_sizes(self) -> dict[str, int]:
        return {
            "input_size": 1,
            "output_size": 1 if self.classes is None or len(self.classes) == 2 else len(self.classes),
        }

    @property
    def hands_over(self) -> type[TaskInputs]:
        """Class names for the logistic lesson (`classes`), nothing for the linear one."""
        return TaskInputs if self.classes is None else ClassInputs

    def task_inputs(self) -> TaskInputs:
        if self.classes is None:
            return TaskInputs()
        return ClassInputs(tuple(self.classes), binary=len(self.classes) == 2)
