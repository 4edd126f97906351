"""`RecurrentNet`: torch's RNN, GRU or LSTM between the inputs and a linear head at every step."""

from __future__ import annotations

import logging
from typing import ClassVar

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from rnnlab.contract import InputKind
from rnnlab.errors import UserError
from rnnlab.models.inputs import TokenShift, check_head, chosen_embedding, one_hot_if_tokens
from rnnlab.models.regularisation import (
    LayerStack,
    LockedDropout,
    State,
    activation_penalty,
    drop_embedding_rows,
    drop_recurrent_weights,
)

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

log = logging.getLogger(__name__)

# model.tie_weights: false, true (a projection when the last layer's width differs from the embedding),
# or last_layer (AWD-LSTM's way: the last layer is sized to the embedding, no projection)
TIES = {
    False: False,
    True: "projection",
    "false": False,
    "true": "projection",
    "projection": "projection",
    "last_layer": "last_layer",
}


class RecurrentNet(nn.Module):
    """`nn.RNN` / `nn.GRU` / `nn.LSTM` mapping (inputs, state) to (outputs at every step, state).

    Token ids are fed one-hot as the d2l book does, or through a learned embedding
    (`embedding_dim`); feature sequences are fed as they are. `head=false` drops the linear head
    and reads the outputs off the hidden state, as the course's "hello" lesson does.

    The AWD-LSTM regularisers (`rnnlab.models.regularisation`) are settings, all off by default:
    `tie_weights` (the head's weights are the embedding matrix, after a linear projection when the
    hidden width differs from `embedding_dim`; `last_layer`: AWD-LSTM's way, the last layer sized to
    `embedding_dim`), `hidden_dropout` (between layers, awd's `dropouth`; null: `dropout`, which
    is always the output's), `embedding_dropout` (whole token rows),
    `input_dropout` (on the embedded inputs), `locked_dropout` (the input, between-layer and output
    dropout keep one mask over all time steps), `weight_dropout` (DropConnect on the hidden-to-hidden
    matrices), and `activation_reg` / `temporal_activation_reg` (AR / TAR, a penalty the task adds to
    the training loss: `forward_with_penalty` returns it with the outputs of a training pass).

    `token_shift` (RWKV's time-shift, `rnnlab.models.inputs.TokenShift`) mixes each step's input
    vector with the previous step's before the recurrent layers; the last input vector is then part
    of the state, `(recurrent state, last input)`, carried from window to window like the rest.
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
        embedding_dim: int | str | None = "auto",
        bidirectional: bool = False,
        head: bool = True,
        tie_weights: bool | str = False,
        hidden_dropout: float | None = None,
        embedding_dropout: float = 0.0,
        input_dropout: float = 0.0,
        locked_dropout: bool = False,
        weight_dropout: float = 0.0,
        activation_reg: float = 0.0,
        temporal_activation_reg: float = 0.0,
        init_range: float | None = None,
        token_shift: bool = False,
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
        tie_weights = TIES.get(tie_weights, tie_weights)
        if tie_weights and embedding_dim == "auto":
            embedding_dim = hidden_size  # tying needs a learned embedding; auto learns one then
        embedding_dim = chosen_embedding(embedding_dim, input_size, hidden_size)
        if tie_weights not in TIES.values():
            raise UserError(f"model.tie_weights={tie_weights!r} is unknown; choose false, true or last_layer")
        between = dropout if hidden_dropout is None else hidden_dropout
        for name, p in (
            ("dropout", dropout),
            ("hidden_dropout", between),
            ("embedding_dropout", embedding_dropout),
            ("input_dropout", input_dropout),
            ("weight_dropout", weight_dropout),
        ):
            if not 0 <= p < 1:
                raise UserError(f"model.{name}={p} must be in [0, 1)")
        for name, value in (
            ("activation_reg", activation_reg),
            ("temporal_activation_reg", temporal_activation_reg),
        ):
            if value < 0:
                raise UserError(f"model.{name}={value} must be 0 (off) or more")
        if (tie_weights or embedding_dropout) and not embedding_dim:
            setting = "tie_weights=true" if tie_weights else f"embedding_dropout={embedding_dropout}"
            raise UserError(f"model.{setting} needs a learned embedding; set model.embedding_dim (e.g. 64)")
        if tie_weights and (not head or input_size != output_size):
            raise UserError(
                "model.tie_weights=true shares the embedding with the output layer, so it needs "
                f"model.head=true and as many outputs as input tokens (here {output_size} and {input_size})"
            )
        if tie_weights == "last_layer" and bidirectional:
            raise UserError(
                "model.tie_weights=last_layer sizes one direction to the embedding; not bidirectional"
            )
        last_size = embedding_dim if tie_weights == "last_layer" else hidden_size
        width = last_size * (2 if bidirectional else 1)
        check_head(head, width, output_size)
        self.input_size = input_size
        self.embedding = nn.Embedding(input_size, embedding_dim) if embedding_dim else None
        rnn_input = embedding_dim or input_size
        self.token_shift = TokenShift(rnn_input) if token_shift else None
        if num_layers == 1 and last_size != hidden_size:
            hidden_size = last_size  # one layer, sized to the embedding it shares
        if num_layers > 1 and (locked_dropout or last_size != hidden_size):
            # A mask shared over time between layers, or layers of different widths, need the layers
            # run one at a time.
            self.rnn: nn.Module = LayerStack(
                CELLS[cell],
                rnn_input,
                hidden_size,
                num_layers,
                between,
                bidirectional,
                last_size,
                locked_dropout,
            )
        else:
            self.rnn = CELLS[cell](
                rnn_input,
                hidden_size,
                num_layers,
                batch_first=True,
                # torch applies this dropout between layers only; the output dropout below covers the last one
                dropout=between if num_layers > 1 else 0.0,
                bidirectional=bidirectional,
            )
        dropout_kind = LockedDropout if locked_dropout else nn.Dropout
        # p = 0 costs nothing (a dropout op with p = 0 would still run on every step)
        self.input_dropout = dropout_kind(input_dropout) if input_dropout else nn.Identity()
        self.dropout = dropout_kind(dropout) if dropout else nn.Identity()
        self.embedding_dropout, self.weight_dropout = embedding_dropout, weight_dropout
        self.activation_reg, self.temporal_activation_reg = activation_reg, temporal_activation_reg
        if tie_weights:  # "last_layer" makes width == embedding_dim: no projection
            self.projection = nn.Linear(width, embedding_dim) if width != embedding_dim else nn.Identity()
            self.head = nn.Linear(embedding_dim, output_size)
            self.head.weight = self.embedding.weight  # one tensor, trained from both ends
        else:
            self.projection = nn.Identity()
            self.head = nn.Linear(width, output_size) if head else nn.Identity()
        if init_range:  # Zaremba et al. 2014: every weight and bias drawn from U(-r, r)
            for name, parameter in self.named_parameters():
                if not name.startswith("token_shift."):  # mixing shares, not weights
                    nn.init.uniform_(parameter, -init_range, init_range)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """Token ids [B, T] -> vectors [B, T, E] (one-hot or learned); feature sequences pass through."""
        if self.embedding is None:
            return one_hot_if_tokens(inputs, self.input_size, self.input_dtype)
        if inputs.is_floating_point():
            raise UserError(
                "model.embedding_dim needs token inputs, but this data gives feature sequences; "
                "set model.embedding_dim=null"
            )
        if self.training and self.embedding_dropout:
            return F.embedding(inputs, drop_embedding_rows(self.embedding.weight, self.embedding_dropout))
        return self.embedding(inputs)

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype of one-hot inputs: the recurrent weights' (float32, or bf16 under `precision`)."""
        return next(self.rnn.parameters()).dtype

    @property
    def penalises(self) -> bool:
        return bool(self.activation_reg or self.temporal_activation_reg)

    def forward(self, inputs: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """inputs [B, T] (token ids) or [B, T, F] -> outputs [B, T, output_size] and the last state."""
        outputs, state, _ = self.forward_with_penalty(inputs, state)
        return outputs, state

    def forward_with_penalty(
        self, inputs: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State, torch.Tensor | None]:
        """`forward`, and the AR/TAR penalty of this pass (None in eval mode or with both off)."""
        x = self.embed(inputs)
        if self.token_shift is not None:
            state, previous = (None, None) if state is None else state
            x, last_input = self.token_shift(x, previous)
        x = self.input_dropout(x)
        if self.training and self.weight_dropout:
            outputs, state = functional_call(
                self.rnn, drop_recurrent_weights(self.rnn, self.weight_dropout), (x, state)
            )
        else:
            outputs, state = self.rnn(x, state)
        if self.token_shift is not None:
            state = (state, last_input)
        dropped = self.dropout(outputs)
        penalty = None
        if self.training and (self.activation_reg or self.temporal_activation_reg):
            penalty = activation_penalty(outputs, dropped, self.activation_reg, self.temporal_activation_reg)
        return self.head(self.projection(dropped)), state, penalty
