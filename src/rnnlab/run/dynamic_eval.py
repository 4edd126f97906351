"""Dynamic evaluation (Krause et al. 2018, "Dynamic Evaluation of Neural Sequence Models",
arXiv:1709.07432): a language model adapted to the text it is scoring, segment by segment.

The split is read as the stream mode reads it (`batch_size` streams, the hidden state carried from
segment to segment), and every segment is scored BEFORE the network learns from it: its loss is
recorded, then one gradient step is taken on that same loss, and the weights are pulled back toward
the trained ones. Every token is therefore predicted from the text before it only (a prequential
score), but by weights that have seen that text, so the number is not comparable with a static one
and is always reported under its own label (`val_loss_dynamic`, `eval_mode: dynamic`).

Two update rules, both from the paper's Section 5 (its improvements to dynamic evaluation):
- `sgd`: theta <- theta - lr * g + decay * (theta_trained - theta), the decay being the paper's
  "global prior" that keeps the adapted weights near the trained ones.
- `rms`: the paper's RMS-normalised rule. Each weight's step is divided by the root mean square of its
  gradient, gathered once on the TRAINING split (segments of the same length, the run's training
  batch size, up to `stats_tokens` tokens), not on the text being scored; and the decay is scaled per
  weight by that same RMS divided by its mean over the parameter tensors (weights that move a lot in
  training are pulled back harder), capped at 1 so a decay never overshoots the trained value:
  theta <- theta - lr * g / (rms + eps) + min(decay * rms / mean_rms, 1) * (theta_trained - theta).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchmetrics.aggregation import MeanMetric

from rnnlab.errors import UserError
from rnnlab.tasks.sequence import detach

RULES = ("sgd", "rms")

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DynamicSettings:
    """How the weights follow the text (see the module's docstring for the two rules)."""

    lr: float  # the step size on each segment's mean loss (0: no update, the static stream exactly)
    decay: float  # the pull back toward the trained weights per segment, in [0, 1]
    rule: str  # sgd | rms
    eps: float  # rms: added to each weight's gradient RMS before dividing by it
    stats_tokens: int | None  # rms: training tokens the gradient RMS is gathered over (None: all)

    def check(self) -> None:
        """A setting that cannot work: one line naming it."""
        if self.rule not in RULES:
            raise UserError(f"rule={self.rule!r} is unknown; choose one of {', '.join(RULES)}")
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise UserError(f"lr={self.lr} must be 0 (no adaptation: the static stream) or more")
        if not 0 <= self.decay <= 1:
            raise UserError(f"decay={self.decay} must be in [0, 1] (a share of the way back per segment)")
        if self.eps <= 0:
            raise UserError(f"eps={self.eps} must be positive (it keeps the rms rule's division finite)")
        if self.stats_tokens is not None and self.stats_tokens < 1:
            raise UserError(f"stats_tokens={self.stats_tokens} must be positive (or null: all of train)")

    def record(self) -> dict[str, float | int | str | None]:
        """What eval.json keeps of the settings (the rms-only ones only under rule=rms)."""
        kept = asdict(self)
        if self.rule != "rms":
            del kept["eps"], kept["stats_tokens"]
        return kept


def gradient_rms(
    network: nn.Module, batches: Batches, loss_fn: Loss, max_segments: int | None
) -> list[torch.Tensor]:
    """Each parameter's root mean square gradient over training segments (the rms rule's statistics,
    the paper's MS_g): the state carried as in training, no dropout, no update."""
    network.eval()
    params = list(network.parameters())
    squares = [torch.zeros_like(p) for p in params]
    state, segments = None, 0
    for inputs, targets in batches:
        if max_segments is not None and segments >= max_segments:
            break
        network.zero_grad(set_to_none=True)
        outputs, state = network(inputs, state)
        loss_fn(outputs, targets).backward()
        for square, p in zip(squares, params, strict=True):
            if p.grad is not None:
                square.add_(p.grad.square())
        state = detach(state)
        segments += 1
    network.zero_grad(set_to_none=True)
    if segments == 0:
        raise UserError("the training split gave no segment for the rms rule's statistics; use rule=sgd")
    return [(square / segments).sqrt_() for square in squares]


class WeightFollower:
    """The update after each segment: a step along the segment's gradient and a decay toward the
    trained weights, both computed from the weights before the update (the paper's equations)."""

    def __init__(
        self, network: nn.Module, settings: DynamicSettings, rms: list[torch.Tensor] | None = None
    ) -> None:
        self.params = [p for p in network.parameters() if p.requires_grad]
        self.trained = [p.detach().clone() for p in self.params]
        self.settings = settings
        if settings.rule == "rms":
            assert rms is not None and len(rms) == len(self.params), "gather gradient_rms first"
            mean_rms = torch.stack([r.mean() for r in rms]).mean()
            # per weight: the step's scale, and the decay's share (capped at 1: never past the trained value)
            self.step_scale = [settings.lr / (r + settings.eps) for r in rms]
            self.decay_share = [(settings.decay * r / mean_rms).clamp_(max=1.0) for r in rms]
        else:
            self.step_scale = [settings.lr] * len(self.params)
            self.decay_share = [settings.decay] * len(self.params)

    @torch.no_grad()
    def update(self) -> None:
        for p, trained, scale, share in zip(
            self.params, self.trained, self.step_scale, self.decay_share, strict=True
        ):
            change = (trained - p).mul_(share)
            if p.grad is not None:
                change.sub_(p.grad * scale)
            p.add_(change)


def dynamic_loss(
    network: nn.Module,
    batches: Batches,
    loss_fn: Loss,
    settings: DynamicSettings,
    rms: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """The token-weighted mean loss of the batches scored dynamically (each before its update).

    The mean is accumulated as the static stream's is (one `MeanMetric`, each segment's mean loss
    counted once per token), so with lr=0 the two agree to the last bit the forward pass allows.
    The network's weights are adapted in place; reload them to score again.
    """
    settings.check()
    network.eval()  # no dropout: the weights adapt, the regularisers of training stay off
    follower = WeightFollower(network, settings, rms)
    mean = MeanMetric(nan_strategy="disable").to(next(network.parameters()).device)
    state = None
    for segment, (inputs, targets) in enumerate(batches):
        network.zero_grad(set_to_none=True)
        outputs, state = network(inputs, state)
        loss = loss_fn(outputs, targets)
        if not torch.isfinite(loss):
            raise UserError(
                f"dynamic evaluation diverged at segment {segment} (loss {loss.item()}); "
                f"lower lr={settings.lr}"
            )
        mean.update(loss.detach().expand(targets.numel()))  # scored before the step on it
        loss.backward()
        follower.update()
        state = detach(state)
    network.zero_grad(set_to_none=True)
    return mean.compute()


# -- from eval.py's settings to a score ----------------------------------------------------------------
# What mode=dynamic uses where a setting is left out (EvalConfig's null). One stream read in order, as
# the paper scores (every update then follows the text it came from), in short segments. lr 0.1: the
# best of 0.03 / 0.1 / 0.3 on The Time Machine's val split for the default LSTM (docs/dynamic-evaluation.md).
DEFAULT_SEGMENT = 20
DEFAULT_BATCH_SIZE = 1
DEFAULTS = {"lr": 0.1, "decay": 0.001, "rule": "sgd", "eps": 1e-5, "stats_tokens": 200_000}


def stream_of_segments(window: int | None, batch_size: int | None) -> dict[str, object]:
    """The data settings that read the split as dynamic evaluation does: the stream mode's batches."""
    return {
        "eval_mode": "stream",
        "eval_num_steps": window if window is not None else DEFAULT_SEGMENT,
        "eval_batch_size": batch_size if batch_size is not None else DEFAULT_BATCH_SIZE,
    }


def dynamic_settings(cfg: Any) -> DynamicSettings | None:
    """mode=dynamic's settings from an `EvalConfig` (checked), or None for the static modes, which
    refuse them: a static number must never look as if it had been adapted, nor the reverse."""
    given = {name: getattr(cfg, name) for name in DEFAULTS if getattr(cfg, name) is not None}
    if getattr(cfg, "mode", None) != "dynamic":
        if given:
            names = ", ".join(f"{name}=" for name in given)
            raise UserError(f"{names} set dynamic evaluation; add mode=dynamic (or leave them out)")
        return None
    settings = DynamicSettings(**{**DEFAULTS, **given})
    settings.check()
    return settings


def training_segments(datamodule: Any, segment: int) -> Batches:
    """The training split as the run's training batch of parallel streams, in segments of `segment`,
    from its start (the rms rule's statistics)."""
    from rnnlab.data.streams import SequentialPartition, window_loader

    tokens = datamodule.split_tokens["train"]
    sampler = SequentialPartition(len(tokens), datamodule.batch_size, segment, random_offset=False)
    return window_loader(tokens, sampler)


def on_device(batches: Batches, device: torch.device) -> Batches:
    return ((inputs.to(device), targets.to(device)) for inputs, targets in batches)


def score_dynamically(
    task: Any, datamodule: Any, checkpoint: Path, settings: DynamicSettings, stage: str, device: torch.device
) -> dict[str, float]:
    """The checkpoint's network scored dynamically on the datamodule's `stage` split (its stream
    batches); the metrics named as static ones are, with `_dynamic` after them."""
    from rnnlab.checkpoint import read_checkpoint

    prefix = "network."
    weights = read_checkpoint(checkpoint)["state_dict"]
    network = task.network
    network.load_state_dict({k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)})
    network.to(device)
    segment = datamodule.eval_num_steps
    rms = None
    if settings.rule == "rms":
        per_batch = datamodule.batch_size * segment
        most = None if settings.stats_tokens is None else -(-settings.stats_tokens // per_batch)
        rms = gradient_rms(
            network, on_device(training_segments(datamodule, segment), device), task.loss, most
        )
    loader = datamodule.val_dataloader() if stage == "val" else datamodule.test_dataloader()
    ce = dynamic_loss(network, on_device(loader, device), task.loss, settings, rms)
    metrics = {f"{stage}_loss_dynamic": float(ce), f"{stage}_ppl_dynamic": float(ce.exp())}
    if "bpc" in getattr(task, "also_reported", ()):
        metrics[f"{stage}_bpc_dynamic"] = float(ce / math.log(2))
    return metrics
