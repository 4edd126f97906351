"""The d2l book's RNN written from scratch: five parameters, tanh, one-hot inputs."""

from __future__ import annotations

import torch
from torch import nn

from rnnlab.errors import UserError


class RNNScratch(nn.Module):
    """H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h);  O_t = H_t W_hq + b_q.

    X_t is the one-hot vector of token t, so X_t W_xh is row x_t of W_xh: the code indexes that row
    instead of multiplying by a mostly-zero matrix. The numbers are the same (multiplying by exact
    zeros adds nothing), and it is what makes the scratch model fast. With `W_ih = W_xh^T`,
    `b_ih = b_h`, `b_hh = 0` it computes what `nn.RNN` followed by `nn.Linear(W_hq^T, b_q)` does.
    """

    def __init__(self, vocab_size: int, hidden_size: int = 512, init_std: float = 0.01) -> None:
        super().__init__()
        if vocab_size < 1 or hidden_size < 1:
            raise UserError(f"vocab_size={vocab_size} and model.hidden_size={hidden_size} must be positive")
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.W_xh = nn.Parameter(torch.randn(vocab_size, hidden_size) * init_std)
        self.W_hh = nn.Parameter(torch.randn(hidden_size, hidden_size) * init_std)
        self.b_h = nn.Parameter(torch.zeros(hidden_size))
        self.W_hq = nn.Parameter(torch.randn(hidden_size, vocab_size) * init_std)
        self.b_q = nn.Parameter(torch.zeros(vocab_size))

    def forward(
        self, tokens: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, T] -> logits [B, T, V] and the last hidden state [B, H]."""
        batch, steps = tokens.shape
        h = tokens.new_zeros(batch, self.hidden_size, dtype=self.W_hh.dtype) if state is None else state
        # The input term of every step at once; only the recurrence must run step by step.
        inputs = self.W_xh[tokens.T] + self.b_h  # [T, B, H]
        hiddens = []
        for t in range(steps):
            h = torch.tanh(torch.addmm(inputs[t], h, self.W_hh))
            hiddens.append(h)
        outputs = torch.stack(hiddens, dim=1)  # [B, T, H]
        return outputs @ self.W_hq + self.b_q, h
