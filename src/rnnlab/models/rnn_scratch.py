"""The d2l book's RNN written from scratch: five parameters, tanh, one-hot inputs."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from rnnlab.contract import InputKind
from rnnlab.errors import UserError


class RNNScratch(nn.Module):
    """H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h);  O_t = H_t W_hq + b_q.

    X_t is the one-hot vector of token t, so X_t W_xh is row x_t of W_xh: the code indexes that row
    instead of multiplying by a mostly-zero matrix. The numbers are the same (multiplying by exact
    zeros adds nothing), and it is what makes the scratch model fast. With `W_ih = W_xh^T`,
    `b_ih = b_h`, `b_hh = 0` it computes what `nn.RNN` followed by `nn.Linear(W_hq^T, b_q)` does.
    Feature sequences [B, T, F] (instead of token ids) are multiplied by W_xh as they are.
    """

    accepts: ClassVar[frozenset[InputKind]] = frozenset({InputKind.TOKENS, InputKind.SEQUENCES})

    def __init__(
        self, input_size: int, output_size: int, hidden_size: int = 512, init_std: float = 0.01
    ) -> None:
        super().__init__()
        if min(input_size, output_size, hidden_size) < 1:
            raise UserError(f"model.hidden_size={hidden_size} and the data's sizes must be positive")
        self.hidden_size = hidden_size
        self.W_xh = nn.Parameter(torch.randn(input_size, hidden_size) * init_std)
        self.W_hh = nn.Parameter(torch.randn(hidden_size, hidden_size) * init_std)
        self.b_h = nn.Parameter(torch.zeros(hidden_size))
        self.W_hq = nn.Parameter(torch.randn(hidden_size, output_size) * init_std)
        self.b_q = nn.Parameter(torch.zeros(output_size))

    def forward(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs [B, T] (token ids) or [B, T, F] -> outputs [B, T, output_size], last hidden [B, H]."""
        batch, steps = inputs.shape[:2]
        h = inputs.new_zeros(batch, self.hidden_size, dtype=self.W_hh.dtype) if state is None else state
        # The input term of every step at once; only the recurrence must run step by step.
        if inputs.is_floating_point():
            inputs = inputs.transpose(0, 1) @ self.W_xh + self.b_h  # [T, B, H]
        else:
            inputs = self.W_xh[inputs.T] + self.b_h
        hiddens = []
        for t in range(steps):
            h = torch.tanh(torch.addmm(inputs[t], h, self.W_hh))
            hiddens.append(h)
        outputs = torch.stack(hiddens, dim=1)  # [B, T, H]
        return outputs @ self.W_hq + self.b_q, h
