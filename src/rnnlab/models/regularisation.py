"""The regularisers of AWD-LSTM (Merity et al. 2017) for torch's recurrent modules.

Each is active in training mode only; `eval()` turns every one of them off.

- `LockedDropout`: one dropout mask per sequence, the same at every time step (variational dropout).
- `drop_embedding_rows`: whole vocabulary entries dropped from an embedding matrix.
- `drop_recurrent_weights`: DropConnect on the hidden-to-hidden matrices, one mask per forward pass,
  given to the module through `torch.func.functional_call` so that its fused kernel still runs (cuDNN's
  on a GPU; oneDNN's rnn primitive, forward and backward, on a CPU: tests/models/test_onednn_path.py).
- `LayerStack`: a multi-layer RNN run one layer at a time, with locked dropout between the layers.
- `activation_penalty`: activation and temporal activation regularisation (AR, TAR).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn import functional as F

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class LockedDropout(nn.Module):
    """Dropout on [B, T, F] with one mask per sequence and feature, shared by all T steps."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.p:
            return x
        keep = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


def drop_embedding_rows(weight: torch.Tensor, p: float) -> torch.Tensor:
    """The embedding matrix with whole token rows zeroed (probability p) and the rest scaled up:
    a dropped token reads as zeros wherever it occurs in the batch."""
    keep = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p)
    return weight * keep / (1 - p)


def drop_recurrent_weights(rnn: nn.Module, p: float) -> dict[str, torch.Tensor]:
    """Every hidden-to-hidden matrix of `rnn` (by parameter name) with DropConnect applied."""
    return {
        name: F.dropout(weight, p, training=True)
        for name, weight in rnn.named_parameters()
        if name.rsplit(".", 1)[-1].startswith("weight_hh")
    }


class LayerStack(nn.Module):
    """`num_layers` single-layer RNNs called in turn, with (locked) dropout between them.

    Called like a multi-layer `nn.RNN`/`nn.GRU`/`nn.LSTM` (batch first) and with the same state
    layout ([layers × directions, B, H], a pair for the LSTM), so checkpoints and samplers see no
    difference except the parameter names (`layers.0.weight_hh_l0`, ...).

    `last_size` gives the last layer another width (AWD-LSTM sizes it to the embedding, so that the
    output layer can share the embedding without a projection). The state then keeps one tensor per
    kind: a narrower layer's rows are zero-padded to the widest, and read back unpadded.
    """

    def __init__(
        self,
        cell: type[nn.RNNBase],
        input_size: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        bidirectional: bool,
        last_size: int | None = None,
        locked: bool = True,
    ) -> None:
        super().__init__()
        directions = 2 if bidirectional else 1
        self.sizes = [hidden_size] * (num_layers - 1) + [last_size or hidden_size]
        self.layers = nn.ModuleList(
            cell(
                input_size if i == 0 else self.sizes[i - 1] * directions,
                size,
                1,
                batch_first=True,
                bidirectional=bidirectional,
            )
            for i, size in enumerate(self.sizes)
        )
        self.between = (LockedDropout if locked else nn.Dropout)(dropout) if dropout else nn.Identity()
        self.directions, self.bidirectional, self.hidden_size = directions, bidirectional, hidden_size
        self.width = max(self.sizes)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        d = self.directions
        paired = isinstance(self.layers[0], nn.LSTM)
        finals = []
        for i, layer in enumerate(self.layers):
            if i:
                x = self.between(x)
            if state is None:
                layer_state = None
            elif paired:
                layer_state = tuple(
                    part[i * d : (i + 1) * d, :, : self.sizes[i]].contiguous() for part in state
                )
            else:
                layer_state = state[i * d : (i + 1) * d, :, : self.sizes[i]].contiguous()
            x, final = layer(x, layer_state)
            finals.append(final)
        if paired:
            return x, (self._stack([h for h, _ in finals]), self._stack([c for _, c in finals]))
        return x, self._stack(finals)

    def _stack(self, finals: list[torch.Tensor]) -> torch.Tensor:
        """The layers' final states as one [layers × directions, B, widest] tensor (zero-padded)."""
        return torch.cat(
            [h if h.shape[-1] == self.width else F.pad(h, (0, self.width - h.shape[-1])) for h in finals]
        )


def activation_penalty(raw: torch.Tensor, dropped: torch.Tensor, ar: float, tar: float) -> torch.Tensor:
    """AR: `ar` × mean square of the last layer's (dropped-out) outputs, which keeps activations
    small; TAR: `tar` × mean square of their change from one step to the next (before dropout),
    which keeps the hidden state slow-moving."""
    penalty = ar * dropped.pow(2).mean()
    if raw.shape[1] > 1:
        penalty = penalty + tar * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
    return penalty


@runtime_checkable
class Penalised(Protocol):
    """A network whose training pass comes with a regularisation penalty (`RecurrentNet`'s AR/TAR)."""

    @property
    def penalises(self) -> bool:
        """Whether a training pass returns a penalty at all."""
        ...

    def forward_with_penalty(self, inputs: torch.Tensor, state: Any = None) -> tuple[Any, Any, Any]: ...


def run_with_penalty(network: Any, inputs: torch.Tensor, state: Any = None) -> tuple[Any, Any, Any]:
    """(outputs, state, penalty) of a recurrent network's pass; the penalty is None for a network
    that has none."""
    if isinstance(network, Penalised):
        return network.forward_with_penalty(inputs, state)
    outputs, state = network(inputs, state)
    return outputs, state, None
