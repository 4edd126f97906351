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

from rnnlab import random_state
from rnnlab.contract import TaskInputs
from rnnlab.errors import UserError

STAGES = ("train", "val", "test")
REDUCTIONS = ("mean", "sum")


class TrainingDiverged(UserError):
    """The loss stopped being a finite number."""


class Task(L.LightningModule):
    """The shared machinery. Subclasses set the class attributes and implement `loss` and `update_metrics`.

    Every task clips gradients (global norm, `gradient_clip_val`) the same way, and draws its
    figures (if it has any) every `figure_every_n_epochs` validations.
    """

    kind: ClassVar[str]  # stored in checkpoints: which task wrote them
    takes: ClassVar[type[TaskInputs]] = TaskInputs  # what the data must hand over (`rnnlab.contract`)
    metric: ClassVar[str]  # the headline metric: validation logs val/<metric>, checkpoints follow it
    metric_mode: ClassVar[str] = "min"
    throughput_unit: ClassVar[str] = "samples"  # what the per-second rate counts
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
        if not isinstance(inputs, self.takes):
            raise TypeError(f"{type(self).__name__} takes {self.takes.__name__}, got {type(inputs).__name__}")
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
        self.resumed_from: dict[str, Any] | None = None  # a checkpoint's training state, until applied

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
        """Stop before a non-finite loss reaches the weights (and before any checkpoint of them).

        Reading the loss synchronises an accelerator with the host, so off the CPU it is checked only
        at logging steps (where Lightning synchronises anyway).
        """
        if loss.device.type != "cpu" and not self.logs_this_step():
            return
        if torch.isfinite(loss):
            return
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        batch = self.trainer.fit_loop.epoch_loop.batch_idx
        where = f"step {self.global_step + 1} (epoch {self.current_epoch + 1}, batch {batch + 1})"
        raise TrainingDiverged(
            f"the loss became {loss.item()} at {where}; likely causes: a learning rate too high "
            f"(optimizer.lr={lr:g}) or gradients too large "
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
            self.log_dict(self.step_metrics(detached), prog_bar=True)
        # `loss_reduction=sum` optimises the batch's summed loss, as some course lessons do.
        return self.training_objective(loss * targets.numel() if self.loss_reduction == "sum" else loss)

    def training_objective(self, loss: torch.Tensor) -> torch.Tensor:
        """What the optimiser minimises: the loss, plus the penalty the network computed in its last
        training forward pass if it has one (AR/TAR of `RecurrentNet`), which the metrics leave out."""
        penalty = getattr(self.network, "penalty", None)
        return loss if penalty is None else loss + penalty

    def evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, batch_idx: int) -> torch.Tensor:
        """Score one validation or test batch into the metrics of `stage`."""
        inputs, targets = batch
        outputs = self.predict(inputs)
        self.update_metrics(stage, outputs, targets, self.loss(outputs, targets))
        return outputs

    def step_metrics(self, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the progress bar and the step curves show."""
        return {"train/loss": loss}

    def logs_this_step(self) -> bool:
        """Whether Lightning writes step metrics after this batch (every `log_every_n_steps`).

        A `self.log` call costs a sizeable fraction of a small RNN's whole step on a CPU, so the
        per-step loss is logged only when it will be written (and the progress bar shows it then).
        """
        trainer = self._trainer
        if trainer is None:
            return True
        if not trainer.log_every_n_steps:
            return False
        # The same count Lightning's logger connector reads: batches so far, this one included.
        batches = trainer.fit_loop.epoch_loop.batch_progress.total.ready
        return batches % trainer.log_every_n_steps == 0 or trainer.should_stop

    # -- epochs -----------------------------------------------------------------------------------
    def on_train_epoch_end(self) -> None:
        train = self.compute_metrics("train")
        if not train:  # an epoch with no training batches (e.g. limit_train_batches=0)
            return
        # The loss is logged per step already (under the same name), so the epoch adds the rest.
        self.log_dict({f"train/{k}": v for k, v in train.items() if k != "loss"})

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.evaluate(batch, "val", batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.evaluate(batch, "test", batch_idx)

    def on_validation_epoch_end(self) -> None:
        self.log_dict({f"val/{k}": v for k, v in self.compute_metrics("val").items()}, prog_bar=True)
        if self.trainer.sanity_checking:
            return
        self.validated_epoch = self.current_epoch
        if self.trainer.is_global_zero:
            self.report("val")

    def on_test_epoch_end(self) -> None:
        self.log_dict({f"test/{k}": v for k, v in self.compute_metrics("test").items()})
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

    # -- checkpoints and exact resume ---------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Plain data only, so that `torch.load(weights_only=True)` can read it. Written here rather than
        # by a callback: Lightning skips callbacks when it saves weights only.
        info = {"task": self.kind, **self.checkpoint_extras()}
        if self.network_config is not None:
            info["network"] = self.network_config
        if self._trainer is not None:
            info["training_state"] = self.training_state()
        checkpoint.setdefault("rnnlab", {}).update(info)

    def training_state(self) -> dict[str, Any]:
        """What an exact resume needs besides what Lightning saves (weights, optimiser, schedulers,
        loop counters) and the datamodule's position: the random generators and the epoch's
        metric accumulators, tagged with their epoch."""
        metrics = {
            name: {"state": dict(metric.metric_state), "updates": metric.update_count}
            for name, metric in self.stage_metrics("train").items()
        }
        return {"epoch": self.current_epoch, "random": random_state.capture(), "train_metrics": metrics}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.resumed_from = checkpoint.get("rnnlab", {}).get("training_state")

    def on_train_start(self) -> None:
        state, self.resumed_from = self.resumed_from, None
        if state is None:
            return
        random_state.restore(state["random"])
        self._follow_new_schedule()
        # Lightning resumes a checkpoint from inside an epoch without calling `on_train_epoch_start`;
        # one from an epoch's end starts the next epoch afresh, and its state is not wanted.
        if state["epoch"] == self.current_epoch:
            self.resume_epoch(state)

    def resume_epoch(self, state: dict[str, Any]) -> None:
        """Continue the epoch that `state` (a `training_state()`) was saved in: its metric accumulators."""
        for name, metric in self.stage_metrics("train").items():
            saved = state["train_metrics"][name]
            for attr, value in saved["state"].items():
                setattr(metric, attr, value)
            metric._update_count = saved["updates"]  # torchmetrics has no public setter for it

    def _follow_new_schedule(self) -> None:
        """A resumed run's schedulers keep their progress but take this run's settings.

        Lightning restores a scheduler's whole state, its settings included: without this, resuming
        with a larger `trainer.max_epochs` would keep the cosine schedule's old `T_max`.
        """
        if self.scheduler_factory is None:
            return
        for config in self.trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            for name, value in getattr(self.scheduler_factory, "keywords", {}).items():
                if hasattr(scheduler, name):
                    setattr(scheduler, name, value)
            # Schedules such as the cosine one step from the last rate, which the old settings made
            # (0 at the end of a finished cosine): restart them from the rate the new ones give here.
            if hasattr(scheduler, "_get_closed_form_lr"):
                rates = scheduler._get_closed_form_lr()
                for group, rate in zip(scheduler.optimizer.param_groups, rates, strict=True):
                    group["lr"] = rate
                scheduler._last_lr = list(rates)
