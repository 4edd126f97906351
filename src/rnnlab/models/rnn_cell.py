"""`RNNCellNet`: an `nn.RNNCell` stepped through the sequence by hand, as the course lesson does."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from rnnlab.contract import InputKind
from rnnlab.errors import UserError
from rnnlab.models.inputs import check_head, one_hot_if_tokens


class RNNCellNet(nn.Module):
    """h_t = cell(x_t, h_{t-1}) in a Python loop; outputs = head(h_t), or h_t itself with `head=false`."""

    accepts: ClassVar[frozenset[InputKind]] = frozenset({InputKind.TOKENS, InputKind.SEQUENCES})

    def __init__(self, input_size: int, output_size: int, hidden_size: int = 32, head: bool = True) -> None:
        super().__init__()
        if min(input_size, output_size, hidden_size) < 1:
            raise UserError(f"model.hidden_size={hidden_size} and the data's sizes must be positive")
        check_head(head, hidden_size, output_size)
        self.input_size = input_size
        self.cell = nn.RNNCell(input_size, hidden_size)
        self.head = nn.Linear(hidden_size, output_size) if head else nn.Identity()

    def forward(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs [B, T] (token ids) or [B, T, F] -> outputs [B, T, output_size], last hidden [B, H]."""
        inputs = one_hot_if_tokens(inputs, self.input_size, self.cell.weight_hh.dtype)
        hidden = state
        steps = []
        for x in inputs.unbind(dim=1):
            hidden = self.cell(x, hidden)
            steps.append(hidden)
        return self.head(torch.stack(steps, dim=1)), hidden
