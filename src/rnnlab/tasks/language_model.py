"""`LanguageModelTask`: next-token cross-entropy with a carried hidden state and truncated BPTT."""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any, ClassVar

import torch
from torch.nn import functional as F
from torchmetrics.aggregation import MeanMetric

from rnnlab.contract import TextInputs
from rnnlab.generation import generate
from rnnlab.tasks.sequence import SequenceTask

log = logging.getLogger(__name__)


class LanguageModelTask(SequenceTask):
    """Trains a network that maps (tokens, state) to (logits, state) to predict the next token.

    Perplexity is exp of the token-weighted mean cross-entropy, accumulated with torchmetrics so it
    reduces correctly over processes; char and byte models also report bits per token (`bpc`,
    cross-entropy / ln 2), the figure papers give for enwik8 and text8. After every validation a
    greedy sample is logged.
    """

    kind: ClassVar[str] = "language_model"
    takes: ClassVar[type[TextInputs]] = TextInputs
    metric: ClassVar[str] = "ppl"
    throughput_unit: ClassVar[str] = "tokens"
    metrics_read_outputs: ClassVar[bool] = False  # perplexity reads the loss only

    def __init__(
        self,
        *args: Any,
        gradient_clip_val: float | None = 1.0,
        sample_prefix: str = "time traveller",
        sample_length: int = 50,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, gradient_clip_val=gradient_clip_val, **kwargs)
        if getattr(getattr(self.network, "rnn", None), "bidirectional", False):
            warnings.warn(
                "model.bidirectional=true: a bidirectional network sees the token it must predict, so it "
                "cannot be a left-to-right language model (its samples degenerate, as the d2l book shows)",
                stacklevel=2,
            )
        self.vocab = self.inputs.vocab
        # char and byte models: the mean cross-entropy in nats per token too (nanoGPT's unit), and bits
        self.also_reported = ("loss", "bpc") if self.inputs.token_kind in ("char", "byte") else ()
        self.sample_prefix, self.sample_length = sample_prefix, sample_length
        # The token-weighted mean cross-entropy. No NaN check: it would read the value on the host
        # every step (a non-finite training loss is stopped by the task's own guard).
        self.add_stage_metrics(lambda stage: {"loss": MeanMetric(nan_strategy="disable")})

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def update_metrics(
        self, stage: str, logits: torch.Tensor | None, targets: torch.Tensor, loss: torch.Tensor
    ) -> None:
        # Every token of the batch counts once: the batch's mean loss, repeated per token (a broadcast
        # view). A weight given as a Python number would be copied to the device on every step.
        self.stage_metrics(stage)["loss"].update(loss.expand(targets.numel()))

    def compute_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        values = super().compute_metrics(stage)
        if not values:
            return values
        ce = values["loss"]
        return {
            "loss": ce,
            "ppl": ce.exp(),
            **({"bpc": ce / math.log(2)} if "bpc" in self.also_reported else {}),
        }

    def step_metrics(self, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"train/loss": loss, "train/batch_ppl": loss.exp()}

    # -- samples and checkpoints ----------------------------------------------------------------
    def _prefix_for_samples(self) -> str:
        """The configured prefix, or the most frequent token when the prefix is not in the vocabulary."""
        tokens = self.vocab.split(self.sample_prefix)
        if tokens and all(token in self.vocab.index for token in tokens):
            return self.sample_prefix
        return self.vocab.tokens[1]

    def report(self, stage: str) -> None:
        if stage != "val" or not self.sample_length:
            return
        text = generate(self.network, self.vocab, self._prefix_for_samples(), self.sample_length)
        log.info("epoch %d sample: %s", self.current_epoch + 1, text)
        self.add_text("sample", text)

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"vocab": self.vocab.to_dict()}

    # -- the run's summary ------------------------------------------------------------------------
    def derived_metrics(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Loss (nats) and bits per token at the best epoch: the perplexity's logarithms (char and byte)."""
        if "bpc" not in self.also_reported:
            return {}
        derived = {}
        for stage in ("val", "train"):
            ppl = metrics.get(f"{stage}_ppl")
            derived[f"{stage}_loss"] = None if ppl is None else math.log(ppl)
            derived[f"{stage}_bpc"] = None if ppl is None else math.log2(ppl)
        return derived

    def summary_lines(self, metrics: dict[str, Any]) -> list[str]:
        """A line for each split scored only in part (data.eval_max_tokens, data.test_max_tokens)."""
        return [
            f"{split} scored its first {metrics[f'{split}_tokens_scored']} tokens only (data.{setting})"
            for split, setting in (("val", "eval_max_tokens"), ("test", "test_max_tokens"))
            if f"{split}_tokens_scored" in metrics
        ]
