"""compare.py's figures: the validation curve of each setting (a seed group as its mean with an sd
band), and a bar chart of a final metric with sd error bars."""

from __future__ import annotations

import statistics
from pathlib import Path

from rnnlab.compare.seed_groups import Group


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    from matplotlib import pyplot

    return pyplot


def mean_curve(group: Group) -> tuple[list[int], list[float], list[float]]:
    """Epochs, mean and sd over the group's runs that reached each epoch (an early stop ends a run's
    curve; the sd is 0 where one run is left)."""
    by_epoch: dict[int, list[float]] = {}
    for run in group.runs:
        for epoch, value in run.curve:
            by_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(by_epoch)
    means = [statistics.fmean(by_epoch[e]) for e in epochs]
    sds = [statistics.stdev(by_epoch[e]) if len(by_epoch[e]) > 1 else 0.0 for e in epochs]
    return epochs, means, sds


def plot_curves(groups: list[Group], monitor: str, path: Path) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 5))
    for group in groups:
        epochs, means, sds = mean_curve(group)
        if not epochs:
            continue
        label = group.label if group.n == 1 else f"{group.label} (mean ± sd, n={group.n})"
        (line,) = axes.plot(epochs, means, label=label)
        if group.n > 1:
            low = [m - s for m, s in zip(means, sds, strict=True)]
            high = [m + s for m, s in zip(means, sds, strict=True)]
            axes.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    axes.set(
        xlabel="epoch", ylabel=monitor, title=monitor, yscale="log" if monitor == "val/ppl" else "linear"
    )
    if axes.lines:
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_final(groups: list[Group], metric: str, path: Path) -> None:
    """One bar per setting: the metric's mean over its seeds, the error bar one sd."""
    plt = _pyplot()
    shown = [group for group in groups if group.values(metric)]
    figure, axes = plt.subplots(figsize=(max(5.0, 1.0 + 0.9 * len(shown)), 5))
    positions = list(range(len(shown)))
    means = [group.mean(metric) for group in shown]
    errors = [group.sd(metric) or 0.0 for group in shown]
    axes.bar(positions, means, yerr=errors, capsize=4, color="tab:blue", alpha=0.8)
    axes.set_xticks(positions, [f"{g.label}\nn={len(g.values(metric))}" for g in shown], fontsize="small")
    axes.tick_params(axis="x", labelrotation=20)
    axes.set(ylabel=metric, title=f"{metric}: mean ± sd over seeds")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
