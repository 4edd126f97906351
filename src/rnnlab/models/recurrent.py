"""`RecurrentNet`: torch's RNN, GRU or LSTM between the inputs and a linear head at every step."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from rnnlab.contract import InputKind
from rnnlab.errors import UserError

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


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


class RecurrentNet(nn.Module):
    """`nn.RNN` / `nn.GRU` / `nn.LSTM` mapping (inputs, state) to (outputs at every step, state).

    Token ids are fed one-hot as the d2l book does, or through a learned embedding
    (`embedding_dim`); feature sequences are fed as they are. `head=false` drops the linear head
    and reads the outputs off the hidden state, as the course's "hello" lesson does.
    """

    accepts: ClassVar[frozenset[InputKind]] = frozenset({InputKind.TOKENS, InputKind.SEQUENCES})

    def __init__(
        self,
        input_size: int,
        output_size: int,
        cell: str = "lstm",
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        embedding_dim: int | None = None,
        bidirectional: bool = False,
        head: bool = True,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise UserError(f"model.cell={cell!r} is unknown; choose one of {', '.join(CELLS)}")
        for name, value in (
            ("input_size", input_size),
            ("output_size", output_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if value < 1:
                raise UserError(f"model.{name}={value} must be positive")
        if not 0 <= dropout < 1:
            raise UserError(f"model.dropout={dropout} must be in [0, 1)")
        width = hidden_size * (2 if bidirectional else 1)
        check_head(head, width, output_size)
        self.input_size = input_size
        self.embedding = nn.Embedding(input_size, embedding_dim) if embedding_dim else None
        self.rnn = CELLS[cell](
            embedding_dim or input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            # torch applies this dropout between layers only; the output dropout below covers the last one
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, output_size) if head else nn.Identity()

    def forward(self, inputs: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """inputs [B, T] (token ids) or [B, T, F] -> outputs [B, T, output_size] and the last state."""
        if self.embedding is None:
            inputs = one_hot_if_tokens(inputs, self.input_size, self.rnn.weight_hh_l0.dtype)
        elif inputs.is_floating_point():
            raise UserError(
                "model.embedding_dim needs token inputs, but this data gives feature sequences; "
                "set model.embedding_dim=null"
            )
        else:
            inputs = self.embedding(inputs)
        outputs, state = self.rnn(inputs, state)
        return self.head(self.dropout(outputs)), state
