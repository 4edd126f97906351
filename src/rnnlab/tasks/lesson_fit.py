"""`LessonFit`: the course's one-feature lessons, whose training points are drawn with the learned fit."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class LessonFit:
    """A mixin for `Task` subclasses on batches of independent examples (put it before `Task`).

    While the data has one input feature, it keeps up to 100 of each epoch's training batches for
    the fit figures. When the network is a single 1-in, 1-out linear layer (the course's first
    lessons), it logs the weight and bias every epoch (params/weight, params/bias) and reports them
    in metrics.json.
    """

    _points: list[tuple[torch.Tensor, torch.Tensor]]

    def on_train_start(self) -> None:
        super().on_train_start()
        self._points = []  # a run resumed inside an epoch gets no `on_train_epoch_start` for it

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._points = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        inputs, targets = batch
        if (
            self.figure_every_n_epochs
            and inputs.dim() == 2
            and inputs.size(1) == 1
            and len(self._points) < 100
        ):
            self._points.append((inputs.detach().flatten().cpu(), targets.detach().flatten().float().cpu()))
        return loss

    def remembered_points(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        points = getattr(self, "_points", None)
        if not points:
            return None
        return torch.cat([x for x, _ in points]), torch.cat([y for _, y in points])

    def line(self) -> tuple[float, float] | None:
        """(w, b) when the network is a single 1-in, 1-out linear layer; None otherwise."""
        layers = [m for m in self.network.modules() if isinstance(m, nn.Linear)]
        if len(layers) != 1 or layers[0].weight.numel() != 1 or layers[0].bias is None:
            return None
        if sum(p.numel() for p in self.network.parameters()) != 2:
            return None
        return layers[0].weight.item(), layers[0].bias.item()

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        line = self.line()
        if line is not None:
            self.log_dict({"params/weight": line[0], "params/bias": line[1]})

    def summary(self) -> dict[str, Any]:
        line = self.line()  # of the weights last loaded: the tested (best) checkpoint's
        return {**super().summary(), **({"weight": line[0], "bias": line[1]} if line else {})}
