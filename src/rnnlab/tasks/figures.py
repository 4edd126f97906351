"""The tutorials' plots, drawn with matplotlib for TensorBoard's IMAGES tab."""

from __future__ import annotations

from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")  # figures go to files and TensorBoard, never to a window

import torch  # noqa: E402
from matplotlib import pyplot  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def sequence_prediction(inputs: torch.Tensor, targets: torch.Tensor, predictions: torch.Tensor) -> Figure:
    """One window of a series: the input (red), the next values to predict and the prediction (blue)."""
    inputs, targets, predictions = (t.numpy() for t in (inputs, targets, predictions))
    figure, axes = pyplot.subplots(figsize=(6, 3.5))
    steps = torch.arange(len(inputs)).numpy()
    axes.plot(steps, inputs, "r.", label="input")
    axes.plot(steps + 1, targets, "k:", label="target (next value)")
    axes.plot(steps + 1, predictions, "b.", label="prediction")
    axes.set_xlabel("time step")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return figure


def fitted_line(x: torch.Tensor, y: torch.Tensor, weight: float, bias: float) -> Figure:
    """The data points and the learned line y = w x + b, its equation in the title."""
    figure, axes = pyplot.subplots(figsize=(5, 3.5))
    axes.plot(x.numpy(), y.numpy(), "o", label="data")
    ends = torch.stack([x.min(), x.max()])
    axes.plot(ends.numpy(), (weight * ends + bias).numpy(), "r-", label="fit")
    axes.set_title(f"y = {weight:.4f} x + {bias:.4f}")
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return figure


def probability_curve(
    x: torch.Tensor, y: torch.Tensor, probability: Callable[[torch.Tensor], torch.Tensor]
) -> Figure:
    """P(class 1 | x) over a range around the data, with the labelled points and the 0.5 line."""
    low, high = float(x.min()), float(x.max())
    margin = max(high - low, 1.0)
    grid = torch.linspace(low - margin, high + margin, 200)
    figure, axes = pyplot.subplots(figsize=(5, 3.5))
    axes.plot(grid.numpy(), probability(grid).numpy(), "b-", label="P(y = 1 | x)")
    axes.plot(x.numpy(), y.numpy(), "ko", label="data")
    axes.axhline(0.5, color="r", linestyle=":")
    axes.set_xlabel("x")
    axes.set_ylim(-0.05, 1.05)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return figure
