"""Find and read runs for scripts/compare.py: metrics.json, overrides, the validation curve, and what
scripts/eval.py measured of the run's best checkpoint (eval.json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.readback import Unreadable, read_json, read_overrides, read_yaml


def monitor_of(runs: list[Run]) -> tuple[str, str]:
    """The runs' headline metric and its direction: the first that a metrics.json (or, for a run still
    going, its task) names."""
    for run in runs:
        if "monitor" in run.metrics:
            return run.metrics["monitor"], run.metrics.get("monitor_mode", "min")
    for run in runs:
        found = task_monitor(run.path)
        if found:
            return found
    raise Unreadable(runs[0].path / "metrics.json", "is missing, and .hydra/config.yaml names no task")


def task_monitor(run_dir: Path) -> tuple[str, str] | None:
    """The headline metric and direction of the task a run's config builds (for a run with no metrics.json
    yet): the task class's own `metric` and `metric_mode`."""
    try:
        target = read_yaml(run_dir / ".hydra" / "config.yaml").get("task", {}).get("_target_")
    except (Unreadable, AttributeError):
        return None
    if not isinstance(target, str) or not target.startswith("rnnlab.tasks."):
        return None
    from hydra.utils import get_class

    try:
        task = get_class(target)
    except (ImportError, AttributeError):
        return None
    return f"val/{task.metric}", getattr(task, "metric_mode", "min")


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


def evaluations(run_dir: Path, metrics: dict[str, Any]) -> dict[str, float]:
    """The losses eval.py wrote for the run's best checkpoint on its own splits, one column per way of
    scoring: `val_loss_windowed64`, `val_loss_stream` (`_b1` for a batch of one stream)."""
    best = metrics.get("best_checkpoint")
    eval_file = run_dir / "checkpoints" / "eval.json"
    if not isinstance(best, str) or not eval_file.is_file():
        return {}
    found = {}
    for entry in read_json(eval_file).values():
        split, mode = entry.get("split"), entry.get("eval_mode")
        of_best = Path(str(entry.get("checkpoint"))).name == Path(best).name
        if not of_best or split not in ("val", "test") or not mode:
            continue
        way = f"{mode}{entry['eval_window']}" if mode == "windowed" else mode
        if mode == "stream" and entry.get("batch_size") == 1:
            way += "_b1"
        if isinstance(entry.get(f"{split}_loss"), float):
            found[f"{split}_loss_{way}"] = entry[f"{split}_loss"]
    return found


def load_run(run_dir: Path) -> Run:
    """The run as its files say; `Unreadable` (naming the file) if one of them is damaged."""
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    overrides = read_overrides(overrides_file) if overrides_file.exists() else []
    metrics_file = run_dir / "metrics.json"
    metrics = read_json(metrics_file) if metrics_file.exists() else {}
    metrics |= evaluations(run_dir, metrics)
    monitor = metrics.get("monitor")
    if not isinstance(monitor, str):
        monitor = (task_monitor(run_dir) or ("",))[0]
    return Run(run_dir, overrides, metrics, read_curve(run_dir, monitor) if monitor else [])


def load_runs(run_dirs: list[Path]) -> tuple[list[Run], list[Unreadable]]:
    """The runs that can be read, and what could not be read of the others (they are left out)."""
    runs, unreadable = [], []
    for run_dir in run_dirs:
        try:
            runs.append(load_run(run_dir))
        except Unreadable as error:
            unreadable.append(error)
    return runs, unreadable
