"""`RegressionTask`: real-valued targets from a feed-forward network, MSE (the course's linear model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics.regression import MeanSquaredError

from rnnlab.errors import UserError
from rnnlab.tasks.base import Task

REDUCTIONS = ("mean", "sum")


class RegressionTask(Task):
    """Minimises the squared error; `loss_reduction=sum` is the course's `MSELoss(reduction="sum")`.

    The reported MSE is always the mean. A 1-in, 1-out linear network also logs its weight and bias
    every epoch (params/weight, params/bias), and a figure of the data with the fitted line.
    """

    kind: ClassVar[str] = "regression"
    metric: ClassVar[str] = "mse"

    def __init__(
        self,
        network: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        network_config: dict | None = None,
        gradient_clip_val: float | None = None,
        loss_reduction: str = "mean",
        figure_every_n_epochs: int = 1,
    ) -> None:
        super().__init__(
            network, optimizer, scheduler, network_config, gradient_clip_val, figure_every_n_epochs
        )
        if loss_reduction not in REDUCTIONS:
            raise UserError(f"task.loss_reduction={loss_reduction!r} is unknown; choose one of mean, sum")
        self.save_hyperparameters(
            ignore=["network", "optimizer", "scheduler", "network_config"], logger=False
        )
        self.loss_reduction = loss_reduction
        self.train_mse, self.val_mse, self.test_mse = (
            MeanSquaredError(),
            MeanSquaredError(),
            MeanSquaredError(),
        )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        predictions = self.network(inputs)
        loss = F.mse_loss(predictions, targets, reduction=self.loss_reduction)
        self.optimise(loss, batch_idx)
        self.train_mse.update(predictions.detach(), targets)
        self.remember_points(inputs, targets)
        self.count(len(targets))
        if self.logs_this_step():
            self.log("train/loss", loss.detach(), prog_bar=True)
        return loss

    def evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, batch_idx: int) -> None:
        inputs, targets = batch
        getattr(self, f"{stage}_mse").update(self.network(inputs), targets)

    def compute_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        metric = getattr(self, f"{stage}_mse")
        mse = metric.compute()
        metric.reset()
        return {"mse": mse}

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.log_line()

    def report(self, stage: str) -> None:
        line, points = self.line(), self.remembered_points()
        if line is None or points is None or not self.figure_due(stage):
            return
        from rnnlab.figures import fitted_line

        self.add_figure(f"{stage}/fit", fitted_line(*points, *line))
