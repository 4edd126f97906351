"""`Task`: what every rnnlab task shares: the loss-to-optimiser path, the non-finite guard, metrics per stage.

A task is the *system* around a plain `nn.Module` network: the loss, the metrics and the
optimisation. Subclasses (one per kind of problem) give the loss and the metric bookkeeping. This
class trains on batches of independent examples with Lightning's automatic optimisation;
`SequenceTask` switches to manual optimisation for truncated BPTT.

What is not the task's job lives elsewhere: the throughput clock (`callbacks.throughput`), the
epoch line (`callbacks.progress`). The network's config, which checkpoints carry so that the
network can be rebuilt without the data, is given by `rnnlab.run.build` (`network_config`), not
threaded through the constructors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torchmetrics import Metric, MetricCollection

from rnnlab.contract import TaskInputs, task_fits
from rnnlab.errors import UserError
from rnnlab.lightning_internals import attached_trainer, writes_logs_after_this_batch
from rnnlab.models.regularisation import Penalised
from rnnlab.tasks.guard import NonFiniteGuard, TrainingDiverged
from rnnlab.tasks.training_state import TrainingStateMixin

STAGES = ("train", "val", "test")
# What an epoch's end logs is the same in every process of a data-parallel run: the metrics are
# reduced over the processes when computed, and the step, epoch and learning rate are everyone's.
# Logged as synced with `max`, which gives back that value exactly, Lightning knows them for global
# values and does not warn that they were logged unsynced.
SAME_IN_EVERY_PROCESS: dict[str, Any] = {"sync_dist": True, "reduce_fx": "max"}
REDUCTIONS = ("mean", "sum")


__all__ = ["Task", "TrainingDiverged"]


class Task(TrainingStateMixin, L.LightningModule):
    """The shared machinery. Subclasses set the class attributes and implement `loss` and `update_metrics`.

    Every task clips gradients (global norm, `gradient_clip_val`) the same way, and draws its
    figures (if it has any) every `figure_every_n_epochs` validations.
    """

    kind: ClassVar[str]  # stored in checkpoints: which task wrote them
    takes: ClassVar[type[TaskInputs]] = TaskInputs  # what the data must hand over (`rnnlab.contract`)
    metric: ClassVar[str]  # the headline metric: validation logs val/<metric>, checkpoints follow it
    metric_mode: ClassVar[str] = "min"
    throughput_unit: ClassVar[str] = "samples"  # what the per-second rate counts
    adds_penalty: ClassVar[bool] = False  # whether training adds a `Penalised` network's penalty to the loss
    also_reported: tuple[str, ...] = ()  # metrics shown next to the headline one (epoch line, HPARAMS)

    def __init__(
        self,
        network: nn.Module,
        inputs: TaskInputs,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        gradient_clip_val: float | None = None,
        loss_reduction: str = "mean",
        figure_every_n_epochs: int = 1,
    ) -> None:
        super().__init__()
        if not task_fits(self.takes, type(inputs)):
            raise TypeError(f"{type(self).__name__} takes {self.takes.__name__}, got {type(inputs).__name__}")
        if isinstance(network, Penalised) and network.penalises and not self.adds_penalty:
            raise UserError(
                "model.activation_reg and model.temporal_activation_reg regularise the outputs of a "
                f"sequence task's network; {type(self).__name__} would ignore them (set them to 0)"
            )
        if gradient_clip_val is not None and gradient_clip_val <= 0:
            raise UserError(
                f"task.gradient_clip_val={gradient_clip_val} must be positive (or null for no clipping)"
            )
        if loss_reduction not in REDUCTIONS:
            raise UserError(f"task.loss_reduction={loss_reduction!r} is unknown; choose one of mean, sum")
        if figure_every_n_epochs < 0:
            raise UserError(f"task.figure_every_n_epochs={figure_every_n_epochs} must be 0 (none) or more")
        # The subclasses' own settings too (Lightning reads them from the chain of __init__ frames).
        self.save_hyperparameters(ignore=["network", "inputs", "optimizer", "scheduler"], logger=False)
        self.network, self.inputs = network, inputs
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.clip_val, self.loss_reduction = gradient_clip_val, loss_reduction
        self.figure_every_n_epochs = figure_every_n_epochs
        self.network_config: dict[str, Any] | None = None  # set by rnnlab.run.build, for checkpoints
        self.validated_epoch: int | None = None  # the last epoch with a validation: val/* are not stale
        self.guard = NonFiniteGuard(self.diverged)
        self.step_logged: tuple[int, tuple[str, ...]] | None = None  # (step, names) of the last training log

    # -- what subclasses write ------------------------------------------------------------------
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean loss of a batch (or of a piece of one)."""
        raise NotImplementedError

    def update_metrics(self, stage: str, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor):
        """Add a batch to the metrics of `stage` ("train", "val", "test")."""
        raise NotImplementedError

    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        """The network's outputs that the loss and the metrics read."""
        return self.network(inputs)

    def report(self, stage: str) -> None:
        """Extra output after a validation or test epoch (figures, samples); rank 0 only."""

    def checkpoint_extras(self) -> dict[str, Any]:
        """Plain data a checkpoint needs besides the network config (a vocabulary, class names)."""
        return {}

    def summary(self) -> dict[str, Any]:
        """Plain values for the run's metrics.json beyond the metrics (e.g. a lesson's learned line)."""
        return {}

    def derived_metrics(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Final metrics this kind of task derives from the reported ones (none by default)."""
        return {}

    def summary_lines(self, metrics: dict[str, Any]) -> list[str]:
        """Lines the end-of-run summary adds for this kind of task (none by default)."""
        return []

    def items_in(self, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        """How many `throughput_unit`s a training batch holds (examples, unless a subclass counts steps)."""
        return len(batch[1])

    # -- metrics ----------------------------------------------------------------------------------
    def add_stage_metrics(self, make: Callable[[str], dict[str, Metric]]) -> None:
        """The metrics `make(stage)` returns, for each stage, as `train_metrics`, `val_metrics`..."""
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", MetricCollection(make(stage), compute_groups=False))

    def stage_metrics(self, stage: str) -> MetricCollection:
        return getattr(self, f"{stage}_metrics")

    def compute_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        """The epoch's metrics of `stage` by name, then reset them."""
        metrics = self.stage_metrics(stage)
        if not any(metric.update_called for metric in metrics.values()):
            return {}  # no batch this epoch (e.g. limit_train_batches=0)
        values = metrics.compute()
        metrics.reset()
        return values

    # -- optimisation ---------------------------------------------------------------------------
    def forward(self, inputs: torch.Tensor, *state: Any) -> Any:
        return self.network(inputs, *state)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = {"scheduler": self.scheduler_factory(optimizer)}
        if self.automatic_optimization:
            # ReduceLROnPlateau reads the headline metric; an epoch without validation skips its step.
            scheduler |= {"monitor": f"val/{self.metric}", "strict": False}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def configure_gradient_clipping(self, optimizer: Any, *args: Any, **kwargs: Any) -> None:
        self.clip_gradients(optimizer, self.clip_val, "norm")

    def on_before_backward(self, loss: torch.Tensor) -> None:
        """The non-finite guard (`rnnlab.tasks.guard`) sees each optimiser step's loss before its backward."""
        self.guard.observe(loss, self.global_step + 1)

    def diverged(self, step: int, value: float) -> str:
        """The one-line error of a non-finite loss, with the settings that most often cause it."""
        trainer = attached_trainer(self)
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer is not None else float("nan")
        noticed = "" if step == self.global_step + 1 else f", noticed at step {self.global_step}"
        return (
            f"the loss became {value} at step {step} (epoch {self.current_epoch + 1}{noticed}); likely "
            f"causes: a learning rate too high (optimizer.lr={lr:g}) or gradients too large "
            f"(task.gradient_clip_val={self.clip_val or 'null'}). "
            "Checkpoints saved before this point are kept"
        )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """A batch of independent examples: Lightning takes one optimiser step on the returned loss."""
        inputs, targets = batch
        outputs = self.predict(inputs)
        loss = self.loss(outputs, targets)
        detached = loss.detach()
        self.update_metrics("train", outputs.detach(), targets, detached)
        if self.logs_this_step():
            # plotted at the step this batch's optimiser step makes (Lightning takes it after this hook)
            self.log_at_step(self.step_metrics(detached), step=self.global_step + 1)
        # `loss_reduction=sum` optimises the batch's summed loss, as some course lessons do.
        return loss * targets.numel() if self.loss_reduction == "sum" else loss

    def evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, batch_idx: int) -> torch.Tensor:
        """Score one validation or test batch into the metrics of `stage`."""
        inputs, targets = batch
        outputs = self.predict(inputs)
        self.update_metrics(stage, outputs, targets, self.loss(outputs, targets))
        return outputs

    def step_metrics(self, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the progress bar and the step curves show."""
        return {"train/loss": loss}

    def log_at_step(self, metrics: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        """`log_dict`, plotted at the optimiser step: a logged `step` is Lightning's x-axis, which would
        otherwise count loader batches (several optimiser steps each with `data.windows_per_batch`).

        Step metrics are not `prog_bar` values: Lightning turns those into Python numbers after every
        batch, a host sync on an accelerator. The progress callbacks read them when they are logged.
        """
        step = self.global_step if step is None else step  # the step count with this batch's steps
        if self.trainer.training:
            self.step_logged = (step, tuple(metrics))
        self.log_dict(metrics, **kwargs)
        synced = {k: v for k, v in kwargs.items() if k in SAME_IN_EVERY_PROCESS}
        self.log_dict({"step": float(step), "epoch": float(self.current_epoch)}, **synced)

    @property
    def steps_per_batch(self) -> int:
        """Optimiser steps in a full training batch (`SequenceTask`: one per window or piece)."""
        return 1

    def steps_in_epoch(self, trainer: L.Trainer) -> int:
        """Optimiser steps in a training epoch, for the progress count."""
        return int(trainer.num_training_batches) * self.steps_per_batch

    def logs_this_step(self) -> bool:
        """Whether Lightning writes step metrics after this batch (every `log_every_n_steps`).

        A `self.log` call costs a sizeable fraction of a small RNN's whole step on a CPU, so the
        per-step loss is logged only when it will be written (and the progress bar shows it then).
        The non-finite guard's flag is read then too: the host waits for the device there anyway.
        """
        trainer = attached_trainer(self)
        if trainer is None:
            return True
        if not writes_logs_after_this_batch(trainer):
            return False
        self.guard.check()
        return True

    # -- epochs -----------------------------------------------------------------------------------
    def on_train_epoch_end(self) -> None:
        train = self.compute_metrics("train")
        if not train:  # an epoch with no training batches (e.g. limit_train_batches=0)
            return
        # The loss is logged per step already (under the same name), so the epoch adds the rest, and
        # the learning rate the epoch trained with (before an epoch-wise schedule steps).
        optimizer = self.trainer.optimizers[0]
        epoch_metrics = {f"train/{k}": v for k, v in train.items() if k != "loss"}
        learning_rate = {f"lr-{type(optimizer).__name__}": optimizer.param_groups[0]["lr"]}
        self.log_at_step({**epoch_metrics, **learning_rate}, **SAME_IN_EVERY_PROCESS)

    def on_validation_start(self) -> None:
        self.guard.check()  # not a validation (nor its checkpoint) of weights a non-finite loss reached

    def on_train_end(self) -> None:
        self.guard.check()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.evaluate(batch, "val", batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.evaluate(batch, "test", batch_idx)

    def on_validation_epoch_end(self) -> None:
        metrics = {f"val/{k}": v for k, v in self.compute_metrics("val").items()}
        if self.trainer.sanity_checking:
            return
        self.log_at_step(metrics, prog_bar=True, **SAME_IN_EVERY_PROCESS)
        self.validated_epoch = self.current_epoch
        if self.trainer.is_global_zero:
            self.report("val")

    def on_test_epoch_end(self) -> None:
        self.log_at_step(
            {f"test/{k}": v for k, v in self.compute_metrics("test").items()}, **SAME_IN_EVERY_PROCESS
        )
        if self.trainer.is_global_zero:
            self.report("test")

    # -- output -----------------------------------------------------------------------------------
    def figure_due(self, stage: str) -> bool:
        """Figures after every `figure_every_n_epochs`-th validation epoch, and after testing."""
        every = self.figure_every_n_epochs
        return bool(every) and (stage == "test" or (self.current_epoch + 1) % every == 0)

    def add_figure(self, tag: str, figure: Any) -> None:
        """Send a matplotlib figure to TensorBoard, then free it."""
        from matplotlib import pyplot

        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(tag, figure, self.global_step, close=False)
        pyplot.close(figure)

    def add_text(self, tag: str, text: str) -> None:
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text(tag, text, self.global_step)

    # -- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Plain data only, so that `torch.load(weights_only=True)` can read it. Written here rather than
        # by a callback: Lightning skips callbacks when it saves weights only.
        self.guard.check()  # never a checkpoint of weights a non-finite loss reached
        info = {"task": self.kind, **self.checkpoint_extras()}
        if self.network_config is not None:
            info["network"] = self.network_config
        self.save_training_state(info)
        checkpoint.setdefault("rnnlab", {}).update(info)
