"""`LanguageModelTask`: next-token cross-entropy with a carried hidden state and truncated BPTT."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics.aggregation import MeanMetric

from rnnlab.data.text.vocab import Vocab
from rnnlab.generation import generate
from rnnlab.tasks.base import TrainingDiverged
from rnnlab.tasks.sequence import SequenceTask, detach

__all__ = ["LanguageModelTask", "TrainingDiverged", "detach"]

log = logging.getLogger(__name__)


class LanguageModelTask(SequenceTask):
    """Trains a network that maps (tokens, state) to (logits, state) to predict the next token.

    Perplexity is exp of the token-weighted mean cross-entropy, accumulated with torchmetrics so it
    reduces correctly over processes. After every validation a greedy sample is logged.
    """

    kind: ClassVar[str] = "language_model"
    metric: ClassVar[str] = "ppl"
    throughput_unit: ClassVar[str] = "tokens"

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
        super().__init__(
            network,
            optimizer,
            scheduler,
            network_config,
            gradient_clip_val,
            tbptt_steps=tbptt_steps,
            carry_state=carry_state,
        )
        self.save_hyperparameters(
            ignore=["network", "vocab", "optimizer", "scheduler", "network_config"], logger=False
        )
        if getattr(getattr(network, "rnn", None), "bidirectional", False):
            warnings.warn(
                "model.bidirectional=true: a bidirectional network sees the token it must predict, so it "
                "cannot be a left-to-right language model (its samples degenerate, as the d2l book shows)",
                stacklevel=2,
            )
        self.vocab = vocab
        self.add_stage_metrics(lambda stage: {"loss": MeanMetric()})  # token-weighted mean cross-entropy

    @property
    def tokens_per_s(self) -> list[float]:
        return self.rates

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def update_metrics(self, stage: str, logits: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor):
        self.stage_metrics(stage)["loss"].update(loss, weight=targets.numel())

    def compute_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        ce = super().compute_metrics(stage)["loss"]
        return {"loss": ce, "ppl": ce.exp()}

    def step_metrics(self, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"train/loss": loss, "train/batch_ppl": loss.exp()}

    # -- samples and checkpoints ----------------------------------------------------------------
    def _prefix_for_samples(self) -> str:
        """The configured prefix, or the most frequent token when the prefix is not in the vocabulary."""
        prefix = self.hparams.sample_prefix
        if all(token in self.vocab.index for token in self.vocab.split(prefix)) and self.vocab.split(prefix):
            return prefix
        return self.vocab.tokens[1]

    def report(self, stage: str) -> None:
        if stage != "val" or not self.hparams.sample_length:
            return
        text = generate(self.network, self.vocab, self._prefix_for_samples(), self.hparams.sample_length)
        log.info("epoch %d sample: %s", self.current_epoch + 1, text)
        self.add_text("sample", text)

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"vocab": self.vocab.to_dict()}
