"""`ClassificationTask`: class scores from any network, for whole examples or for every step of a sequence."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch
from torch.nn import functional as F
from torchmetrics import Metric
from torchmetrics.aggregation import MeanMetric
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
)

from rnnlab.contract import ClassInputs
from rnnlab.errors import UserError
from rnnlab.tasks.base import Task
from rnnlab.tasks.lesson_fit import LessonFit

log = logging.getLogger(__name__)


class ClassificationTask(LessonFit, Task):
    """Cross-entropy over `class_names`, or with `binary` one logit and BCE (the course's sigmoid + BCELoss,
    in the numerically stable form).

    A recurrent network's outputs [N, T, C] are scored at the last step (the sequence's class), or
    at every step with `label_per_step` (the "hello" -> "ohlol" lesson, whose decoded prediction is
    logged after each validation). Validation and test report accuracy (also per class), AUROC for
    binary problems, and a confusion matrix figure; a single-feature binary problem also gets its
    probability curve.
    """

    kind: ClassVar[str] = "classification"
    metric: ClassVar[str] = "acc"
    metric_mode: ClassVar[str] = "max"
    takes: ClassVar[type[ClassInputs]] = ClassInputs

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        class_names = self.inputs.class_names
        if len(class_names) < 2 or (self.inputs.binary and len(class_names) != 2):
            raise UserError(
                f"a classification needs 2 or more classes (binary: exactly 2), got {list(class_names)}"
            )
        self.class_names = [str(name) for name in class_names]
        self.binary, self.label_per_step = self.inputs.binary, self.inputs.label_per_step
        self.add_stage_metrics(self._metrics)
        self._first: tuple[torch.Tensor, torch.Tensor] | None = None  # an example and its prediction
        self._confusion: torch.Tensor | None = None
        self._prediction: tuple[str, str] | None = None  # the last validation's decoded prediction, target
        self._first_right: int | None = None  # the first epoch whose decoded prediction was the target

    def _metrics(self, stage: str) -> dict[str, Metric]:
        n = len(self.class_names)
        metrics: dict[str, Metric] = {"loss": MeanMetric()}
        if self.binary:
            metrics |= {"acc": BinaryAccuracy(), "auroc": BinaryAUROC()}
        else:
            metrics["acc"] = MulticlassAccuracy(n, average="micro")
        if stage != "train":
            metrics["confusion"] = MulticlassConfusionMatrix(n)  # also gives the accuracy per class
        return metrics

    # -- scores ------------------------------------------------------------------------------------
    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        """[N, C] (or [N, T, C] per step); [N, 1] / [N, T, 1] when binary."""
        outputs = self.network(inputs)
        if isinstance(outputs, tuple):  # a recurrent network also returns its state
            outputs = outputs[0]
        if outputs.dim() == 3 and not self.label_per_step:
            outputs = outputs[:, -1]  # the last step's output classifies the whole sequence
        return outputs

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean over examples (and steps)."""
        if self.binary:
            return F.binary_cross_entropy_with_logits(logits.flatten(), targets.flatten().float())
        return F.cross_entropy(logits.flatten(0, -2), targets.flatten().long())

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """What the metrics read: P(class 1) when binary, class scores otherwise; one row per label."""
        if self.binary:
            return logits.flatten().sigmoid()
        return logits.flatten(0, -2)

    def update_metrics(self, stage: str, logits: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor):
        predictions, labels = self.predictions(logits), targets.flatten().long()
        for name, metric in self.stage_metrics(stage).items():
            if name == "loss":
                metric.update(loss, weight=labels.numel())
            elif name == "confusion" and self.binary:
                metric.update((predictions > 0.5).long(), labels)
            else:
                metric.update(predictions, labels)

    def compute_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        values = super().compute_metrics(stage)
        self._confusion = values.pop("confusion", None)
        if self._confusion is not None:
            # Accuracy per class: its diagonal count over its row. A class absent from the split
            # gets no entry (torchmetrics' per-class accuracy would report 0 for it).
            for name, hits, count in zip(
                self.class_names, self._confusion.diag(), self._confusion.sum(1), strict=True
            ):
                if count > 0:
                    values[f"acc_{name.replace(' ', '_')}"] = hits / count
        return values

    def evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, batch_idx: int) -> torch.Tensor:
        logits = super().evaluate(batch, stage, batch_idx)
        if batch_idx == 0:  # an example and its prediction, for `report`
            self._first = (batch[1][0].detach().cpu(), logits[0].detach().cpu())
        return logits

    def summary(self) -> dict[str, Any]:
        """The decoded prediction of the last validation, its target, and the first epoch it was right."""
        if self._prediction is None:
            return super().summary()
        text, wanted = self._prediction
        return {
            **super().summary(),
            "prediction": text,
            "prediction_target": wanted,
            "prediction_first_right_epoch": self._first_right,
        }

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"class_names": self.class_names, "binary": self.binary, "label_per_step": self.label_per_step}

    # -- what a person looks at --------------------------------------------------------------------
    def decode(self, logits: torch.Tensor) -> str:
        """A per-step prediction as text: the class names of the chosen classes, joined."""
        chosen = (logits.flatten() > 0).long() if self.binary else logits.argmax(-1)
        return "".join(self.class_names[i] for i in chosen.tolist())

    def report(self, stage: str) -> None:
        if self.label_per_step and self._first is not None:
            target, logits = self._first
            text, wanted = self.decode(logits), "".join(self.class_names[i] for i in target)
            where = "test" if stage == "test" else f"epoch {self.current_epoch + 1}"
            log.info("%s prediction: %s (target %s)", where, text, wanted)
            self.add_text(f"{stage}/prediction", text)
            if stage == "val":
                self._prediction = (text, wanted)
                if text == wanted and self._first_right is None:
                    self._first_right = self.current_epoch + 1
        if not self.figure_due(stage):
            return
        from rnnlab.tasks.figures import probability_curve

        if self._confusion is not None:
            matrix = MulticlassConfusionMatrix(len(self.class_names))
            figure, _ = matrix.plot(val=self._confusion.cpu(), labels=self.class_names)
            self.add_figure(f"{stage}/confusion_matrix", figure)
        points = self.remembered_points()
        if self.binary and points is not None:
            line = self.line()

            def probability(x: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    return self.network(x[:, None].to(self.device)).flatten().sigmoid().cpu()

            figure = probability_curve(*points, probability)
            if line is not None:
                figure.axes[0].set_title(f"P = sigmoid({line[0]:.3f} x + {line[1]:.3f})")
            self.add_figure(f"{stage}/probability", figure)
