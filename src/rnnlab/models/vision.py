"""The convolutional networks of the course's lessons 10-11: a plain CNN, GoogLeNet's Inception block
and a residual block, each sized for MNIST-like images.

Each network is a `features` stack then one linear layer `fc`; the width of `fc` is measured with a
dummy image of `input_size`, so on 28x28 digits it is exactly the lessons' 320 / 1408 / 512.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.contract import InputKind
from rnnlab.errors import UserError

MAX_SIDE = 512  # the largest image side tried when looking for the smallest one a network accepts


def _check_image_size(input_size: Sequence[int], name: str) -> tuple[int, int, int]:
    if len(input_size) != 3 or any(int(size) < 1 for size in input_size):
        raise UserError(f"{name} takes images [C, H, W]; got input_size={list(input_size)}")
    channels, height, width = (int(size) for size in input_size)
    return channels, height, width


def _feature_count(features: nn.Module, channels: int, height: int, width: int) -> int | None:
    """Values per example that `features` makes of an image this size; None if it is too small."""
    with torch.no_grad():
        try:
            count = features(torch.zeros(1, channels, height, width)).numel()
        except RuntimeError:  # a kernel larger than what is left of the image
            return None
    return count or None


def fc_input_size(features: nn.Module, input_size: Sequence[int], name: str) -> int:
    """The width of the linear layer after `features`, or a UserError naming the smallest usable side."""
    channels, height, width = _check_image_size(input_size, name)
    count = _feature_count(features, channels, height, width)
    if count is None:
        smallest = next(
            (side for side in range(1, MAX_SIDE + 1) if _feature_count(features, channels, side, side)),
            None,
        )
        need = f"at least {smallest}x{smallest} pixels" if smallest else "larger images"
        raise UserError(f"{name} needs images of {need}, got {height}x{width}; use MLP for smaller ones")
    return count


class _ConvClassifier(nn.Module):
    """`features`, flattened, then `fc`; subclasses build `features`."""

    accepts: ClassVar[frozenset[InputKind]] = frozenset({InputKind.IMAGES})

    def __init__(self, features: nn.Module, input_size: Sequence[int], output_size: int) -> None:
        super().__init__()
        self.features = features
        self.fc = nn.Linear(fc_input_size(features, input_size, type(self).__name__), output_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(images).flatten(1))


class SimpleCNN(_ConvClassifier):
    """Lesson 10: two 5x5 convolutions, each followed by 2x2 max pooling and a ReLU."""

    def __init__(self, input_size: Sequence[int], output_size: int) -> None:
        channels = _check_image_size(input_size, type(self).__name__)[0]
        features = nn.Sequential(
            nn.Conv2d(channels, 10, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(10, 20, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        super().__init__(features, input_size, output_size)


class InceptionA(nn.Module):
    """Lesson 11's Inception block: four parallel branches concatenated into 88 channels."""

    out_channels: ClassVar[int] = 16 + 24 + 24 + 24

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch5x5 = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=1), nn.Conv2d(16, 24, kernel_size=5, padding=2)
        )
        self.branch3x3 = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=1),
            nn.Conv2d(16, 24, kernel_size=3, padding=1),
            nn.Conv2d(24, 24, kernel_size=3, padding=1),
        )
        self.branch_pool = nn.Conv2d(in_channels, 24, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        branches = [self.branch1x1(x), self.branch5x5(x), self.branch3x3(x), self.branch_pool(pooled)]
        return torch.cat(branches, dim=1)


class InceptionNet(_ConvClassifier):
    """Lesson 11: the lesson-10 CNN with an Inception block after each convolution stage."""

    def __init__(self, input_size: Sequence[int], output_size: int) -> None:
        channels = _check_image_size(input_size, type(self).__name__)[0]
        features = nn.Sequential(
            nn.Conv2d(channels, 10, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            InceptionA(10),
            nn.Conv2d(InceptionA.out_channels, 20, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            InceptionA(20),
        )
        super().__init__(features, input_size, output_size)


class ResidualBlock(nn.Module):
    """Lesson 11's residual block: relu(x + conv(relu(conv(x)))), keeping channels and size."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class ResidualNet(_ConvClassifier):
    """Lesson 11: two convolution stages, each followed by a residual block."""

    def __init__(self, input_size: Sequence[int], output_size: int) -> None:
        channels = _check_image_size(input_size, type(self).__name__)[0]
        features = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            ResidualBlock(16),
            nn.Conv2d(16, 32, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            ResidualBlock(32),
        )
        super().__init__(features, input_size, output_size)
