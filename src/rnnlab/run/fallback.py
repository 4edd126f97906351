"""Resuming from what is left of a damaged run: the newest checkpoint that can still be read, and a
`metrics.json` that cannot be read set aside (renamed, never deleted) so that the run can go on.

Kept free of torch at import (`rnnlab.run.resume` is imported before Hydra starts); torch is
loaded only to try a checkpoint.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab.readback import Unreadable, checkpoint_problem, read_overrides, read_yaml, set_aside

log = logging.getLogger(__name__)

PREFERRED = ("last.ckpt", "interrupted.ckpt")  # of two checkpoints saved at once, the one to resume


def checkpoints_newest_first(run_dir: Path) -> list[Path]:
    """Every checkpoint of the run (`last`, `interrupted`, `best-*`), the most recently saved first."""
    folder = run_dir / "checkpoints"
    found = [path for path in folder.glob("*.ckpt") if path.is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda path: (path.stat().st_mtime, path.name in PREFERRED), reverse=True)


def checkpoint_step(path: Path) -> int:
    """The optimiser step a checkpoint was saved at; `Unreadable` if it cannot be resumed from."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch.load fails in many ways on a file cut short or overwritten
        raise Unreadable(path, checkpoint_problem(path, error)) from None
    if not isinstance(checkpoint, dict) or not {"global_step", "state_dict"} <= checkpoint.keys():
        raise Unreadable(path, "not a Lightning checkpoint (no global_step or state_dict)")
    return int(checkpoint["global_step"])


@dataclass
class Choice:
    """The checkpoint to resume from (None: none is readable), its step, and the newer ones lost."""

    checkpoint: Path | None = None
    step: int | None = None
    lost: list[Unreadable] = field(default_factory=list)


def readable_checkpoint(run_dir: Path) -> Choice:
    """The newest checkpoint of the run that can be read, and the newer ones that could not."""
    choice = Choice()
    for path in checkpoints_newest_first(run_dir):
        try:
            choice.step = checkpoint_step(path)
        except Unreadable as error:
            choice.lost.append(error)
            continue
        choice.checkpoint = path
        break
    return choice


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


def saved_overrides(run_dir: Path) -> list[str]:
    """The run's command-line overrides, from `.hydra/overrides.yaml`, checked against the copy Hydra
    keeps in `.hydra/hydra.yaml` (`hydra.overrides.task`). A damaged one of the two is set aside and the
    other is used (Hydra writes both again when the run starts); if both are damaged, or both parse but
    disagree, `Unreadable` says so in one line."""
    hydra_dir = run_dir / ".hydra"
    primary, copy = hydra_dir / "overrides.yaml", hydra_dir / "hydra.yaml"
    read: dict[Path, list[str] | Unreadable] = {}
    for path, reader in ((primary, read_overrides), (copy, hydra_task_overrides)):
        try:
            read[path] = reader(path)
        except Unreadable as error:
            read[path] = error
    first, second = read[primary], read[copy]
    if isinstance(first, Unreadable) and isinstance(second, Unreadable):
        if not copy.exists():  # a run folder from before hydra.yaml was kept, or made by hand
            raise first
        raise Unreadable(primary, f"{first.reason} (hydra.yaml's copy too: {second.reason}); start a new run")
    if isinstance(first, list) and isinstance(second, list) and first != second:
        raise Unreadable(
            primary, "disagrees with hydra.yaml's hydra.overrides.task (one of them is damaged); repair one"
        )
    for path, value in read.items():
        if isinstance(value, Unreadable) and path.exists():
            print(f"warning: {value}; set aside as {set_aside(path).name}", file=sys.stderr)
    return first if isinstance(first, list) else second


def hydra_task_overrides(path: Path) -> list[str]:
    """The command-line overrides Hydra records in `.hydra/hydra.yaml`."""
    task = read_yaml(path)
    for key in ("hydra", "overrides", "task"):
        task = task.get(key) if isinstance(task, dict) else None
    if not isinstance(task, list) or not all(isinstance(item, str) for item in task):
        raise Unreadable(path, "has no list of overrides at hydra.overrides.task")
    return task
