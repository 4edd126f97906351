"""`RegressionTask`: real-valued targets from a feed-forward network, MSE (the course's linear model)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch.nn import functional as F
from torchmetrics.regression import MeanSquaredError

from rnnlab.tasks.base import Task
from rnnlab.tasks.lesson_fit import LessonFit


class RegressionTask(LessonFit, Task):
    """Minimises the squared error; `loss_reduction=sum` is the course's `MSELoss(reduction="sum")`.

    The reported MSE (and the logged loss) is always the mean. A 1-in, 1-out linear network also
    logs its weight and bias every epoch (params/weight, params/bias), and a figure of the data with
    the fitted line.
    """

    kind: ClassVar[str] = "regression"
    metric: ClassVar[str] = "mse"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_stage_metrics(lambda stage: {"mse": MeanSquaredError()})

    def loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(predictions, targets)

    def update_metrics(
        self, stage: str, predictions: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor
    ):
        self.stage_metrics(stage)["mse"].update(predictions, targets)

    def report(self, stage: str) -> None:
        line, points = self.line(), self.remembered_points()
        if line is None or points is None or not self.figure_due(stage):
            return
        from rnnlab.tasks.figures import fitted_line

        self.add_figure(f"{stage}/fit", fitted_line(*points, *line))
