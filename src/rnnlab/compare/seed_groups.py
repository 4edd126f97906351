"""Runs that differ only in `seed`, as one row: mean ± sd and n of every metric (behind compare.py).

A group is keyed by a run's overrides less its `seed=`; runs of other settings stay apart. A metric a
run lacks (a failed run, a run still going) is left out of that metric's mean, and its n counts the
runs that have it. The sd is the sample standard deviation (n - 1), absent for one run.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnlab.compare.comparison import Run, columns
from rnnlab.overrides import key_of

SEED = "seed"


def settings_of(run: Run) -> tuple[str, ...]:
    """What the run is, less its seed: its overrides, sorted."""
    return tuple(sorted(o for o in run.overrides if key_of(o) != SEED))


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class Group:
    """The runs of one setting over several seeds."""

    settings: tuple[str, ...]
    runs: list[Run]
    label: str = ""

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def status(self) -> str:
        counts = Counter(run.status for run in self.runs)
        if len(counts) == 1:
            return next(iter(counts))
        return ", ".join(f"{count} {status}" for status, count in counts.most_common())

    def values(self, name: str) -> list[float]:
        found = (_finite(run.value(name)) for run in self.runs)
        return [value for value in found if value is not None]

    def mean(self, name: str) -> float | None:
        values = self.values(name)
        return statistics.fmean(values) if values else None

    def sd(self, name: str) -> float | None:
        values = self.values(name)
        return statistics.stdev(values) if len(values) > 1 else None


def group_runs(runs: list[Run], by_seed: bool = True) -> list[Group]:
    """One group per setting (seeds pooled), in the order the runs came; `by_seed=False`: one per run."""
    if not by_seed:
        groups = [Group(tuple(sorted(run.overrides)), [run]) for run in runs]
    else:
        found: dict[tuple[str, ...], Group] = {}
        for run in runs:
            found.setdefault(settings_of(run), Group(settings_of(run), [])).runs.append(run)
        groups = list(found.values())
    # what every group shares is left out of the labels (one run alone keeps all its overrides)
    alone = len(groups) == 1 and groups[0].n == 1
    shared = set() if alone or not groups else set.intersection(*(set(g.settings) for g in groups))
    for group in groups:
        varying = ",".join(o for o in group.settings if o not in shared)
        # nothing varies (one setting over seeds): the run's folder, or "all runs"
        group.label = varying or (group.runs[0].path.name if group.n == 1 else "all runs")
    return groups


def sort_groups(groups: list[Group], metric: str, highest_first: bool = False) -> list[Group]:
    def key(group: Group) -> tuple[int, float]:
        mean = group.mean(metric)
        if mean is None:
            return (1, 0.0)
        return (0, -mean if highest_first else mean)

    return sorted(groups, key=key)


def with_tag(runs: list[Run], tags: list[str]) -> list[Run]:
    """The runs that carry every one of the tags (`tags=[...]` of the run, in its metrics.json)."""
    return [run for run in runs if set(tags) <= set(run.metrics.get("tags") or [])]


def group_rows(groups: list[Group], metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per group: run (the label), status, n, then each metric's mean and `<metric>_sd`."""
    rows = []
    for group in groups:
        row: dict[str, Any] = {"run": group.label, "status": group.status, "n": group.n}
        for name in metrics:
            values = [run.value(name) for run in group.runs]
            if group.n == 1 or (len(set(values)) == 1 and isinstance(values[0], int)):
                row[name], row[f"{name}_sd"] = values[0], None  # one run, or a count all runs share
            else:
                row[name], row[f"{name}_sd"] = group.mean(name), group.sd(name)
        rows.append(row)
    return rows


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"


def _spread(sd: float, mean: Any) -> str:
    """An sd to the precision its mean is written with: `6,837 ± 173`, not `6,837 ± 173.132`."""
    if isinstance(mean, (int, float)) and not isinstance(mean, bool) and abs(mean) >= 1000:
        return f"{sd:,.0f}"
    return f"{sd:.3f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table, each metric as `mean ± sd` where there is an sd."""
    header = [name for name in rows[0] if not name.endswith("_sd")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = []
        for name in header:
            cell = _number(row[name])
            sd = row.get(f"{name}_sd")
            cells.append(f"{cell} ± {_spread(sd, row[name])}" if sd is not None else cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV: the mean in the metric's column, the sd in `<metric>_sd` (empty for one run)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_tables(rows: list[dict[str, Any]], out: Path) -> tuple[Path, Path]:
    (out / "comparison.md").write_text(markdown(rows))
    (out / "comparison.csv").write_text(csv_text(rows))
    return out / "comparison.md", out / "comparison.csv"


def metric_columns(runs: list[Run]) -> tuple[str, ...]:
    """compare.py's usual columns (headline metric, throughput, epochs, wall time), then every other
    numeric val_/test_/train_ entry some run's metrics.json holds (test_loss, test_auroc, ...), and the
    parameter count."""
    usual = columns(runs)[2:]
    more = sorted(
        {
            key
            for run in runs
            for key, value in run.metrics.items()
            if key.startswith(("val_", "test_", "train_")) and _finite(value) is not None
        }
        - set(usual)
    )
    size = ("parameters",) if any("parameters" in run.metrics for run in runs) else ()
    return (*usual, *more, *size)
