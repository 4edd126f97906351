"""`Task`: what every rnnlab task shares: optimisation, the non-finite guard, epoch reports, checkpoints.

A task is the *system* around a plain `nn.Module` network: the loss, the metrics and the
optimisation. Subclasses (one per kind of problem) give the loss and the metric bookkeeping; this
class trains on batches of independent examples (`SequenceTask` overrides that for streams), and
turns the metrics into logged values, an epoch line on the console, scheduler steps and
checkpoints that say how to rebuild the network.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torchmetrics import Metric, MetricCollection

from rnnlab.errors import UserError

log = logging.getLogger(__name__)

STAGES = ("train", "val", "test")
REDUCTIONS = ("mean", "sum")


class TrainingDiverged(UserError):
    """The loss stopped being a finite number."""


class Task(L.LightningModule):
    """The shared machinery. Subclasses set the class attributes and implement the abstract methods.

    Optimisation is manual, so that the language model can take one optimiser step per TBPTT piece
    and every task clips (global norm, `gradient_clip_val`) the same way.
    """

    kind: ClassVar[str]  # stored in checkpoints: which task wrote them
    metric: ClassVar[str]  # the headline metric: validation logs val/<metric>, checkpoints follow it
    metric_mode: ClassVar[str] = "min"
    throughput_unit: ClassVar[str] = "samples"  # what the per-second rate counts

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
        super().__init__()
        if gradient_clip_val is not None and gradient_clip_val <= 0:
            raise UserError(
                f"task.gradient_clip_val={gradient_clip_val} must be positive (or null for no clipping)"
            )
        if loss_reduction not in REDUCTIONS:
            raise UserError(f"task.loss_reduction={loss_reduction!r} is unknown; choose one of mean, sum")
        if figure_every_n_epochs < 0:
            raise UserError(f"task.figure_every_n_epochs={figure_every_n_epochs} must be 0 (none) or more")
        self.automatic_optimization = False
        self.network = network
        self.network_config = network_config
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.clip_val, self.loss_reduction = gradient_clip_val, loss_reduction
        self.figure_every_n_epochs = figure_every_n_epochs
        self.rates: list[float] = []  # training throughput, one entry per epoch
        self._epoch_started, self._epoch_items, self._epoch_timed = 0.0, 0, False
        self._points: list[tuple[torch.Tensor, torch.Tensor]] = []

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
        """Plain data the checkpoint needs besides the network config (a vocabulary, class names)."""
        return {}

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
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer)}}

    def optimise(self, loss: torch.Tensor, batch_idx: int) -> None:
        """One optimiser step on `loss`: guard, backward, clip, step."""
        optimizer = self.optimizers()
        self._check_finite(loss, batch_idx)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self.clip_gradients(optimizer, self.clip_val, "norm")
        optimizer.step()

    def _check_finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Stop before a non-finite loss reaches the weights (and before any checkpoint of them).

        Reading the loss synchronises an accelerator with the host, so off the CPU it is checked only
        at logging steps (where Lightning synchronises anyway).
        """
        if loss.device.type != "cpu" and not self.logs_this_step():
            return
        if torch.isfinite(loss):
            return
        lr = self.optimizers().optimizer.param_groups[0]["lr"]
        where = f"step {self.global_step + 1} (epoch {self.current_epoch + 1}, batch {batch_idx + 1})"
        raise TrainingDiverged(
            f"the loss became {loss.item()} at {where}; likely causes: a learning rate too high "
            f"(optimizer.lr={lr:g}) or gradients too large "
            f"(task.gradient_clip_val={self.clip_val or 'null'}). "
            "Checkpoints saved before this point are kept"
        )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """A batch of independent examples: one optimiser step (`SequenceTask` reads streams instead)."""
        inputs, targets = batch
        outputs = self.predict(inputs)
        loss = self.loss(outputs, targets)
        # `loss_reduction=sum` optimises the batch's summed loss, as some course lessons do.
        self.optimise(loss * targets.numel() if self.loss_reduction == "sum" else loss, batch_idx)
        loss = loss.detach()
        self.update_metrics("train", outputs.detach(), targets, loss)
        self.remember_points(inputs, targets)
        self.count(len(targets))
        if self.logs_this_step():
            self.log_dict(self.step_metrics(loss), prog_bar=True)
        return loss

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
        connector = getattr(self.trainer, "_logger_connector", None)
        return connector is None or connector.should_update_logs

    # -- throughput -------------------------------------------------------------------------------
    def count(self, items: int) -> None:
        """Add the items (tokens, points, examples) of one training batch to this epoch's rate."""
        self._epoch_items += items

    def on_train_epoch_start(self) -> None:
        self._epoch_started, self._epoch_items, self._epoch_timed = time.perf_counter(), 0, False
        self._points = []

    # -- one-feature data, drawn with its fit -------------------------------------------------------
    def remember_points(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Keep this epoch's training points when there is one input feature, for the fit figures."""
        if (
            self.figure_every_n_epochs
            and inputs.dim() == 2
            and inputs.size(1) == 1
            and len(self._points) < 100
        ):
            self._points.append((inputs.detach().flatten().cpu(), targets.detach().flatten().float().cpu()))

    def remembered_points(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self._points:
            return None
        return torch.cat([x for x, _ in self._points]), torch.cat([y for _, y in self._points])

    def line(self) -> tuple[float, float] | None:
        """(w, b) when the network is a single 1-in, 1-out linear layer, as in the course's first lessons."""
        layers = [m for m in self.network.modules() if isinstance(m, nn.Linear)]
        if len(layers) != 1 or layers[0].weight.numel() != 1 or layers[0].bias is None:
            return None
        if sum(p.numel() for p in self.network.parameters()) != 2:
            return None
        return layers[0].weight.item(), layers[0].bias.item()

    def _stop_epoch_clock(self) -> None:
        """Train throughput of this epoch, timed up to the end of its last step (not validation)."""
        if self._epoch_timed or not self._epoch_items:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # once per epoch, so the clock sees finished work
        seconds = time.perf_counter() - self._epoch_started
        self.rates.append(self._epoch_items * self.trainer.world_size / seconds)
        self._epoch_timed = True

    # -- epochs -----------------------------------------------------------------------------------
    def on_train_epoch_end(self) -> None:
        if not self._epoch_items:  # an epoch with no training batches (e.g. limit_train_batches=0)
            return
        self._stop_epoch_clock()
        rate_name = f"train/{self.throughput_unit}_per_s"
        # The loss is logged per step already (under the same name), so the epoch adds the rest.
        train = {f"train/{k}": v for k, v in self.compute_metrics("train").items() if k != "loss"}
        self.log_dict({**train, rate_name: self.rates[-1]})
        line = self.line()
        if line is not None:
            self.log_dict({"params/weight": line[0], "params/bias": line[1]})
        val = self.trainer.callback_metrics.get(f"val/{self.metric}")
        if self.trainer.is_global_zero:
            log.info(
                "epoch %d/%d  train %s %.4g  val %s %s  %s %s/s",
                self.current_epoch + 1,
                self.trainer.max_epochs,
                self.metric,
                train[f"train/{self.metric}"],
                self.metric,
                "-" if val is None else f"{val:.4g}",
                f"{self.rates[-1]:,.0f}",
                self.throughput_unit,
            )
        scheduler = self.lr_schedulers()
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if val is not None:
                scheduler.step(val)
        elif scheduler is not None:
            scheduler.step()

    def on_validation_epoch_start(self) -> None:
        if not self.trainer.sanity_checking:
            self._stop_epoch_clock()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.evaluate(batch, "val", batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.evaluate(batch, "test", batch_idx)

    def on_validation_epoch_end(self) -> None:
        self.log_dict({f"val/{k}": v for k, v in self.compute_metrics("val").items()}, prog_bar=True)
        if not self.trainer.sanity_checking and self.trainer.is_global_zero:
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

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Plain data only, so that `torch.load(weights_only=True)` can read it and the network can
        # be rebuilt without the data.
        checkpoint["rnnlab"] = {"task": self.kind, "network": self.network_config, **self.checkpoint_extras()}
