"""Resuming inside a run: what a run started with `resume=` does in its folder (`job_plan`).

A resumed run is the same run: it writes into its own folder (TensorBoard events, `train.log`,
`metrics.json`, checkpoints), from its newest readable checkpoint (`last.ckpt`, refreshed inside long
epochs, or `interrupted.ckpt`). A sweep job skips itself if it completed, starts again if it failed,
and otherwise resumes. What is left of a damaged run is used: a checkpoint that cannot be read gives way
to the newest one that can, and a `metrics.json` that cannot be read is set aside (renamed, never
deleted) so that the run can go on. The command line that asked for the resume was checked before Hydra
started (`rnnlab.command_line`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rnnlab.checkpoint import Choice, Position, readable_checkpoint
from rnnlab.errors import UserError
from rnnlab.readback import Unreadable, read_json, set_aside

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobPlan:
    action: str  # "resume", "skip" (completed before), "rerun" (failed before) or "start"
    checkpoint: Path | None = None
    position: Position | None = None  # where the checkpoint was saved, as read when it was chosen
    previous: dict | None = None  # the run's metrics.json so far
    lost: tuple[str, ...] = ()  # damaged files set aside, for the run's metrics.json


def job_plan(run_dir: Path, in_sweep: bool) -> JobPlan:
    """What a run started with `resume=` does in its folder.

    A single run always resumes from its newest checkpoint (the command line was checked). A sweep
    job skips itself if it completed, starts again if it failed (its error was its own), and
    otherwise resumes from its checkpoint, or starts if it never wrote one.

    Damage is survived where it can be: a checkpoint that cannot be read gives way to the newest one
    that can (a warning names both), and a `metrics.json` that cannot be read is set aside (renamed)
    and noted in the new one. Only a single run with no readable checkpoint stops, in one line.
    """
    metrics_file = run_dir / "metrics.json"
    try:
        previous = read_json(metrics_file) if metrics_file.is_file() else None
        damaged_metrics = None
    except Unreadable as error:
        previous, damaged_metrics = None, error
    status = (previous or {}).get("status")
    if in_sweep and status in ("completed", "pruned"):
        return JobPlan("skip", previous=previous)
    if in_sweep and status == "failed":
        return JobPlan("rerun", previous=previous)
    choice = readable_checkpoint(run_dir)
    if choice.checkpoint is None and not in_sweep:
        if not choice.lost:
            raise UserError(f"resume: {run_dir} has no checkpoint to resume from")
        problems = "; ".join(f"{relative(e.path, run_dir)}: {e.reason}" for e in choice.lost)
        raise UserError(f"resume: no checkpoint of {run_dir} can be read ({problems}); start it again")
    lost = set_damage_aside(run_dir, choice, damaged_metrics)
    if choice.checkpoint is None:
        return JobPlan("start", previous=previous, lost=tuple(lost))
    return JobPlan("resume", choice.checkpoint, choice.position, previous, tuple(lost))


def set_damage_aside(run_dir: Path, choice: Choice, damaged_metrics: Unreadable | None) -> tuple[str, ...]:
    """Rename the unreadable files a resume goes on without, warn about each, and return the notes
    for the run's new metrics.json (what was lost, where it went back to)."""
    notes = []
    back = f"from {choice.checkpoint.name} (step {choice.step})" if choice.checkpoint else "to the start"
    for error in choice.lost:
        aside = set_aside(error.path).name
        log.warning("%s; set aside as %s, going back %s", error, aside, back)
        notes.append(f"{relative(error.path, run_dir)} was unreadable ({error.reason}); set aside as {aside}")
    if choice.lost:
        notes.append(f"went back {back}")
    if damaged_metrics is not None:
        aside = set_aside(damaged_metrics.path).name
        log.warning("%s; set aside as %s, the run goes on", damaged_metrics, aside)
        notes.append(
            f"metrics.json was unreadable ({damaged_metrics.reason}); set aside as {aside}, "
            "with what it recorded before (the earlier resumes and result)"
        )
    return tuple(notes)


def relative(path: Path, run_dir: Path) -> str:
    return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)
