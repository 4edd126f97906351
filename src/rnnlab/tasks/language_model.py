"""`LanguageModelTask`: next-token cross-entropy with a carried hidden state and truncated BPTT."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.nn import functional as F
from torchmetrics.aggregation import MeanMetric

from rnnlab.data.vocab import Vocab
from rnnlab.errors import UserError
from rnnlab.generation import generate

log = logging.getLogger(__name__)


def detach(state: Any) -> Any:
    """Cut the graph behind a hidden state (a tensor, an LSTM's (h, c) pair, or None)."""
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return tuple(part.detach() for part in state)


class TrainingDiverged(UserError):
    """The loss stopped being a finite number."""


class LanguageModelTask(L.LightningModule):
    """Trains a network that maps (tokens, state) to (logits, state) to predict the next token.

    Optimisation is manual (Lightning's documented pattern for truncated BPTT since 2.0): each batch
    of T steps is cut into pieces of `tbptt_steps` (default: the whole batch), and every piece gets
    its own backward pass, gradient clipping (global norm) and optimiser step, with the state
    detached between pieces. When `carry_state` is true (sequential partitioning) the state also
    carries from batch to batch, and starts from zero at every epoch; otherwise every batch starts
    from zero. Validation and test keep a state of their own.

    Perplexity is exp of the token-weighted mean cross-entropy, accumulated with torchmetrics so it
    reduces correctly over processes.
    """

    def __init__(
        self,
        network: nn.Module,
        vocab: Vocab,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        network_config: dict | None = None,
        tbptt_steps: int | None = None,
        gradient_clip_val: float | None = 1.0,
        carry_state: bool = True,
        sample_prefix: str = "time traveller",
        sample_length: int = 50,
    ) -> None:
        super().__init__()
        if tbptt_steps is not None and tbptt_steps < 1:
            raise UserError(f"task.tbptt_steps={tbptt_steps} must be at least 1 (or null for whole batches)")
        if gradient_clip_val is not None and gradient_clip_val <= 0:
            raise UserError(
                f"task.gradient_clip_val={gradient_clip_val} must be positive (or null for no clipping)"
            )
        self.save_hyperparameters(
            ignore=["network", "vocab", "optimizer", "scheduler", "network_config"], logger=False
        )
        self.automatic_optimization = False
        self.network = network
        self.vocab = vocab
        self.network_config = network_config
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.train_ce, self.val_ce, self.test_ce = MeanMetric(), MeanMetric(), MeanMetric()
        self.train_state: Any = None
        self.eval_state: Any = None
        self.tokens_per_s: list[float] = []  # one entry per training epoch
        self._epoch_started = 0.0
        self._epoch_tokens = 0
        self._epoch_timed = False

    def forward(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        return self.network(tokens, state)

    def setup(self, stage: str) -> None:
        num_steps = getattr(self.trainer.datamodule, "num_steps", None)
        tbptt = self.hparams.tbptt_steps
        if stage == "fit" and tbptt is not None and num_steps is not None and tbptt > num_steps:
            raise UserError(
                f"task.tbptt_steps={tbptt} is longer than a training sequence (data.num_steps={num_steps}); "
                f"use at most {num_steps}"
            )

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer)}}

    # -- training -------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self.train_state = None
        self._epoch_started, self._epoch_tokens, self._epoch_timed = time.perf_counter(), 0, False

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        optimizer = self.optimizers()
        state = self.train_state if self.hparams.carry_state else None
        piece = self.hparams.tbptt_steps or inputs.size(1)
        for x, y in zip(inputs.split(piece, dim=1), targets.split(piece, dim=1), strict=True):
            logits, state = self.network(x, state)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
            self._check_finite(loss, batch_idx)
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            self.clip_gradients(optimizer, self.hparams.gradient_clip_val, "norm")
            optimizer.step()
            state = detach(state)
            loss = loss.detach()
            self.train_ce.update(loss, weight=y.numel())
        self.train_state = state
        self._epoch_tokens += targets.numel()
        if self._logs_this_step():
            self.log_dict({"train/loss": loss, "train/batch_ppl": loss.exp()}, prog_bar=True)
        return loss

    def _check_finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Stop before a non-finite loss reaches the weights (and before any checkpoint of them).

        Reading the loss synchronises an accelerator with the host, so off the CPU it is checked only
        at logging steps (where Lightning synchronises anyway).
        """
        if loss.device.type != "cpu" and not self._logs_this_step():
            return
        if torch.isfinite(loss):
            return
        lr = self.optimizers().optimizer.param_groups[0]["lr"]
        where = f"step {self.global_step + 1} (epoch {self.current_epoch + 1}, batch {batch_idx + 1})"
        raise TrainingDiverged(
            f"the loss became {loss.item()} at {where}; likely causes: a learning rate too high "
            f"(optimizer.lr={lr:g}) or gradients too large "
            f"(task.gradient_clip_val={self.hparams.gradient_clip_val or 'null'}). "
            "Checkpoints saved before this point are kept"
        )

    def _logs_this_step(self) -> bool:
        """Whether Lightning writes step metrics after this batch (every `log_every_n_steps`).

        A `self.log` call costs a sizeable fraction of a small RNN's whole step on a CPU, so the
        per-step loss is logged only when it will be written (and the progress bar shows it then).
        """
        connector = getattr(self.trainer, "_logger_connector", None)
        return connector is None or connector.should_update_logs

    def _stop_epoch_clock(self) -> None:
        """Train throughput of this epoch, timed up to the end of its last step (not validation)."""
        if self._epoch_timed or not self._epoch_tokens:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # once per epoch, so the clock sees finished work
        seconds = time.perf_counter() - self._epoch_started
        self.tokens_per_s.append(self._epoch_tokens * self.trainer.world_size / seconds)
        self._epoch_timed = True

    def on_train_epoch_end(self) -> None:
        if not self._epoch_tokens:  # an epoch with no training batches (e.g. limit_train_batches=0)
            return
        self._stop_epoch_clock()
        ce = self.train_ce.compute()
        self.train_ce.reset()
        self.log_dict({"train/ppl": ce.exp(), "train/tokens_per_s": self.tokens_per_s[-1]})
        val_ppl = self.trainer.callback_metrics.get("val/ppl")
        if self.trainer.is_global_zero:
            log.info(
                "epoch %d/%d  train ppl %.3f  val ppl %s  %s tokens/s",
                self.current_epoch + 1,
                self.trainer.max_epochs,
                ce.exp(),
                "-" if val_ppl is None else f"{val_ppl:.3f}",
                f"{self.tokens_per_s[-1]:,.0f}",
            )
        scheduler = self.lr_schedulers()
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if val_ppl is not None:
                scheduler.step(val_ppl)
        elif scheduler is not None:
            scheduler.step()

    # -- evaluation -----------------------------------------------------------------------------
    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], metric: MeanMetric) -> None:
        inputs, targets = batch
        logits, self.eval_state = self.network(inputs, self.eval_state)
        metric.update(F.cross_entropy(logits.flatten(0, 1), targets.flatten()), weight=targets.numel())

    def on_validation_epoch_start(self) -> None:
        if not self.trainer.sanity_checking:
            self._stop_epoch_clock()
        self.eval_state = None

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_ce)

    def on_validation_epoch_end(self) -> None:
        ce = self.val_ce.compute()
        self.val_ce.reset()
        self.log_dict({"val/loss": ce, "val/ppl": ce.exp()}, prog_bar=True)
        if not self.trainer.sanity_checking and self.hparams.sample_length and self.trainer.is_global_zero:
            self._log_sample()

    def on_test_epoch_start(self) -> None:
        self.eval_state = None

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_ce)

    def on_test_epoch_end(self) -> None:
        ce = self.test_ce.compute()
        self.test_ce.reset()
        self.log_dict({"test/loss": ce, "test/ppl": ce.exp()})

    # -- samples and checkpoints ----------------------------------------------------------------
    def _prefix_for_samples(self) -> str:
        """The configured prefix, or the most frequent token when the prefix is not in the vocabulary."""
        prefix = self.hparams.sample_prefix
        if all(token in self.vocab.index for token in self.vocab.split(prefix)) and self.vocab.split(prefix):
            return prefix
        return self.vocab.tokens[1]

    def _log_sample(self) -> None:
        text = generate(self.network, self.vocab, self._prefix_for_samples(), self.hparams.sample_length)
        log.info("epoch %d sample: %s", self.current_epoch + 1, text)
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text("sample", text, self.global_step)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Plain data only, so that `torch.load(weights_only=True)` can read it and generate.py can
        # rebuild the network without the corpus.
        checkpoint["rnnlab"] = {
            "task": "language_model",
            "network": self.network_config,
            "vocab": self.vocab.to_dict(),
        }
