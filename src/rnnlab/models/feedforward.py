"""Feed-forward networks of the course lessons: a linear layer and a multi-layer perceptron."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from rnnlab.contract import InputKind
from rnnlab.errors import UserError

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def flat_size(input_size: int | Sequence[int]) -> int:
    """Features per example: `input_size` itself, or the product of an image's [C, H, W]."""
    return input_size if isinstance(input_size, int) else math.prod(input_size)


class Linear(nn.Module):
    """y = x W^T + b: the course's linear model, and (with a sigmoid in the loss) its logistic one."""

    accepts: ClassVar[frozenset[InputKind]] = frozenset({InputKind.FEATURES})

    def __init__(self, input_size: int, output_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_size, output_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.linear(inputs)


class MLP(nn.Module):
    """Linear layers of `hidden_sizes` with an activation after each; images are flattened first."""

    accepts: ClassVar[frozenset[InputKind]] = frozenset({InputKind.FEATURES, InputKind.IMAGES})

    def __init__(
        self,
        input_size: int | Sequence[int],
        output_size: int,
        hidden_sizes: Sequence[int] = (512, 256, 128, 64),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise UserError(
                f"model.activation={activation!r} is unknown; choose one of {', '.join(ACTIVATIONS)}"
            )
        if any(size < 1 for size in hidden_sizes):
            raise UserError(f"model.hidden_sizes={list(hidden_sizes)} must all be positive")
        sizes = [flat_size(input_size), *hidden_sizes]
        layers: list[nn.Module] = [nn.Flatten()]
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-1], output_size))
        self.layers = nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)
