"""`SequenceRegressionTask`: the next value of a series at every step, MSE, state carried like the LM's."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch.nn import functional as F
from torchmetrics.regression import MeanSquaredError

from rnnlab.tasks.sequence import SequenceTask


class SequenceRegressionTask(SequenceTask):
    """Udacity's sine-wave lesson as a task: a recurrent network reads a series and predicts each next value.

    The hidden state carries from window to window (the tutorial's `hidden.data` trick) through the
    same mechanism as the language model's. After each validation, a figure of the first held-out
    window (input, target, prediction) goes to TensorBoard.
    """

    kind: ClassVar[str] = "sequence_regression"
    metric: ClassVar[str] = "mse"
    throughput_unit: ClassVar[str] = "points"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_stage_metrics(lambda stage: {"mse": MeanSquaredError()})
        self._window: tuple[torch.Tensor, ...] | None = None

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs, targets)

    def update_metrics(self, stage: str, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor):
        self.stage_metrics(stage)["mse"].update(outputs, targets)

    def evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, batch_idx: int) -> torch.Tensor:
        outputs = super().evaluate(batch, stage, batch_idx)
        if batch_idx == 0:  # the first row of the first window, for the figure
            inputs, targets = batch
            self._window = tuple(t[0, :, 0].detach().cpu() for t in (inputs, targets, outputs))
        return outputs

    def report(self, stage: str) -> None:
        if self._window is None or not self.figure_due(stage) or self._window[0].dim() != 1:
            return
        from rnnlab.tasks.figures import sequence_prediction

        self.add_figure(f"{stage}/prediction", sequence_prediction(*self._window))
