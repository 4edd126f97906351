"""`RecurrentLM`: torch's RNN, GRU or LSTM between a one-hot (or embedding) input and a linear head."""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn import functional as F

from rnnlab.errors import UserError

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class RecurrentLM(nn.Module):
    """A next-token model on `nn.RNN` / `nn.GRU` / `nn.LSTM`.

    `embedding_dim=None` feeds one-hot vectors as the book does; a number feeds a learned embedding.
    """

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        embedding_dim: int | None = None,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise UserError(f"model.cell={cell!r} is unknown; choose one of {', '.join(CELLS)}")
        for name, value in (
            ("vocab_size", vocab_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if value < 1:
                raise UserError(f"model.{name}={value} must be positive")
        if not 0 <= dropout < 1:
            raise UserError(f"model.dropout={dropout} must be in [0, 1)")
        if bidirectional:
            warnings.warn(
                "model.bidirectional=true: a bidirectional network sees the token it must predict, so it "
                "cannot be a left-to-right language model (its samples degenerate, as the d2l book shows)",
                stacklevel=2,
            )
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim) if embedding_dim else None
        self.rnn = CELLS[cell](
            embedding_dim or vocab_size,
            hidden_size,
            num_layers,
            batch_first=True,
            # torch applies this dropout between layers only; the output dropout below covers the last one
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), vocab_size)

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """tokens [B, T] -> logits [B, T, V] and the state after the last step."""
        if self.embedding is None:
            inputs = F.one_hot(tokens, self.vocab_size).to(self.head.weight.dtype)
        else:
            inputs = self.embedding(tokens)
        outputs, state = self.rnn(inputs, state)
        return self.head(self.dropout(outputs)), state
