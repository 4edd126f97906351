"""Collect finished, failed and running runs into one table and one plot (behind scripts/compare.py)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.readback import Unreadable, read_json, read_overrides


def monitor_of(runs: list[Run]) -> tuple[str, str]:
    """The runs' headline metric and its direction, from their metrics.json (language model: val/ppl, min)."""
    for run in runs:
        if "monitor" in run.metrics:
            return run.metrics["monitor"], run.metrics.get("monitor_mode", "min")
    return "val/ppl", "min"


def columns(runs: list[Run]) -> tuple[str, ...]:
    """run, status, the headline metric on val / test / train, the throughput, epochs, wall time."""
    name = monitor_of(runs)[0].split("/", 1)[-1]
    rates = sorted({key for run in runs for key in run.metrics if key.endswith("_per_s")}) or ["tokens_per_s"]
    bits = [key for key in ("val_bpc", "test_bpc") if any(key in run.metrics for run in runs)]
    headline = (f"val_{name}", f"test_{name}", *bits, f"train_{name}")
    return ("run", "status", *headline, *rates, "epochs", "wall_time_s")


@dataclass
class Run:
    """One run directory: its overrides, final metrics (if it finished) and its validation curve."""

    path: Path
    overrides: list[str]
    metrics: dict[str, Any]
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, monitored validation metric)

    @property
    def status(self) -> str:
        return self.metrics.get("status", "running or killed")

    def value(self, name: str) -> Any:
        if name == "epochs" and "epochs" not in self.metrics and self.curve:
            return self.curve[-1][0]
        return self.metrics.get(name)


def find_runs(paths: list[Path]) -> list[Path]:
    """Every run directory (one holding `.hydra/`) at or below the given paths."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise FileNotFoundError(
                f"{path} is not a directory; give run or sweep directories under outputs/"
            )
        found += sorted(hydra_dir.parent for hydra_dir in path.rglob(".hydra") if hydra_dir.is_dir())
    return found


def read_curve(run_dir: Path, tag: str = "val/ppl") -> list[tuple[int, float]]:
    """(epoch, value) pairs of a scalar from the run's TensorBoard events; also works while it runs."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    scalars = events.Tags().get("scalars", [])
    if tag not in scalars:
        return []
    # Lightning logs the epoch number as a scalar at the same steps as the metrics; at an epoch's last
    # step it is logged again by the next epoch, so the smallest value there is the metric's epoch.
    epoch_at: dict[int, int] = {}
    for e in events.Scalars("epoch") if "epoch" in scalars else []:
        epoch_at[e.step] = min(epoch_at.get(e.step, int(e.value) + 1), int(e.value) + 1)
    return [(epoch_at.get(e.step, i + 1), e.value) for i, e in enumerate(events.Scalars(tag))]


def load_run(run_dir: Path) -> Run:
    """The run as its files say; `Unreadable` (naming the file) if one of them is damaged."""
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    overrides = read_overrides(overrides_file) if overrides_file.exists() else []
    metrics_file = run_dir / "metrics.json"
    metrics = read_json(metrics_file) if metrics_file.exists() else {}
    monitor = metrics.get("monitor", "val/ppl")
    return Run(
        run_dir, overrides, metrics, read_curve(run_dir, monitor if isinstance(monitor, str) else "val/ppl")
    )


def load_runs(run_dirs: list[Path]) -> tuple[list[Run], list[Unreadable]]:
    """The runs that can be read, and what could not be read of the others (they are left out)."""
    runs, unreadable = [], []
    for run_dir in run_dirs:
        try:
            runs.append(load_run(run_dir))
        except Unreadable as error:
            unreadable.append(error)
    return runs, unreadable


def names(runs: list[Run]) -> list[str]:
    """Each run's overrides, less those that all runs share (the sweep's fixed settings), sorted: for
    the jobs of one sweep, the names of their folders and TensorBoard runs."""
    shared = set.intersection(*(set(run.overrides) for run in runs)) if len(runs) > 1 else set()
    labels = [",".join(sorted(o for o in run.overrides if o not in shared)) for run in runs]
    return [label or run.path.name for label, run in zip(labels, runs, strict=True)]


def sort_key(metric: str, highest_first: bool = False):
    def key(run: Run) -> tuple[int, float]:
        value = run.value(metric)
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        return (0, -value if highest_first else value) if finite else (1, 0.0)

    return key


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"
    return "-" if value is None else str(value)


def table_rows(runs: list[Run]) -> list[dict[str, Any]]:
    return [
        {"run": label, "status": run.status, **{name: run.value(name) for name in columns(runs)[2:]}}
        for label, run in zip(names(runs), runs, strict=True)
    ]


def markdown(rows: list[dict[str, Any]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(row[name]) for name in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_curves(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for label, run in zip(names(runs), runs, strict=True):
        if run.curve:
            epochs, values = zip(*run.curve, strict=True)
            axes.plot(epochs, values, label=label)
    monitor = monitor_of(runs)[0]
    axes.set(
        xlabel="epoch", ylabel=monitor, title=monitor, yscale="log" if monitor == "val/ppl" else "linear"
    )
    if axes.lines:
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
