"""What every sequence network does with its input: one-hot or embedded tokens, and a head that fits.

A new network imports these instead of its sibling's module (see docs/extending.md, "Add a model").
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from rnnlab.errors import UserError

log = logging.getLogger(__name__)

# A vocabulary wider than this (words, code points of many scripts) gets a learned embedding under
# embedding_dim=auto; characters and bytes stay one-hot, as in the book.
ONE_HOT_LIMIT = 256


def chosen_embedding(embedding_dim: int | str | None, input_size: int, hidden_size: int) -> int | None:
    """`auto`: an embedding as wide as the hidden state for more than `ONE_HOT_LIMIT` input symbols,
    one-hot otherwise; null or 0: one-hot, as asked (with a warning when that is wide); N: N."""
    if embedding_dim == "auto":
        return hidden_size if input_size > ONE_HOT_LIMIT else None
    if isinstance(embedding_dim, str):
        raise UserError(f"model.embedding_dim={embedding_dim!r}: give a width, auto, or null (one-hot)")
    if not embedding_dim and input_size > ONE_HOT_LIMIT:
        log.warning(
            "model.embedding_dim=null: a one-hot input %d wide (slow for words); "
            "model.embedding_dim=auto or a width learns an embedding",
            input_size,
        )
    return embedding_dim or None


def one_hot_if_tokens(inputs: torch.Tensor, input_size: int, dtype: torch.dtype) -> torch.Tensor:
    """Token ids [B, T] become one-hot vectors [B, T, input_size]; feature sequences pass through."""
    if inputs.is_floating_point():
        return inputs.to(dtype)
    return F.one_hot(inputs, input_size).to(dtype)


def check_head(head: bool, width: int, output_size: int) -> None:
    if not head and width != output_size:
        raise UserError(
            f"model.head=false reads the outputs off the hidden state, so its width ({width}) must equal "
            f"the data's output size ({output_size}); set model.hidden_size={output_size} or model.head=true"
        )


class TokenShift(torch.nn.Module):
    """RWKV's time-shift ("token shift"): each step's input vector mixed, channel by channel, with the
    previous step's, `mix * x_t + (1 - mix) * x_{t-1}`, so that a recurrent layer sees two tokens at
    once. `mix` is learned, one value per channel, starting at i / width for channel i (as RWKV-4
    starts its first layer's), from all previous to nearly all current. The step before the first is
    `previous` (the last input vector of the window before, carried like the hidden state), or zeros.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.mix = torch.nn.Parameter(torch.arange(width, dtype=torch.float32) / width)

    def forward(
        self, x: torch.Tensor, previous: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, W], previous [B, W] or None -> the mixed inputs [B, T, W] and x's last step [B, W]."""
        before = torch.zeros_like(x[:, :1]) if previous is None else previous[:, None].to(x.dtype)
        shifted = torch.cat([before, x[:, :-1]], dim=1)
        return torch.lerp(shifted, x, self.mix.to(x.dtype)), x[:, -1]
