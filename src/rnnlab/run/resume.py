"""Resuming into the same run: `python scripts/train.py resume=RUN_DIR [trainer.max_epochs=N ...]`.

A resumed run is the same run: it writes into its own folder (TensorBoard events, `train.log`,
`metrics.json`, checkpoints), from its newest checkpoint (`last.ckpt`, refreshed inside long epochs,
or `interrupted.ckpt`). Its config is composed again from the overrides saved in its
`.hydra/overrides.yaml`, plus the new ones, which may only change how long and how it is run
(`RESUMABLE`); the network, data, task and optimiser are the checkpoint's.

Under `-m`, `resume=SWEEP_DIR` re-runs a sweep into its folder: each job skips itself if it
completed, resumes from its checkpoint if it was interrupted, and starts again if it failed or
never ran (`job_plan`). `resume=last` picks the newest run (or sweep).

`rewrite_command` turns the command line into what Hydra needs before Hydra starts (its run or
sweep folder must be known then), and refuses what cannot work in one line, before anything is
written. Kept free of torch and lightning.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from rnnlab.errors import UserError
from rnnlab.readback import Unreadable, read_json, read_overrides, read_yaml
from rnnlab.run.fallback import (
    checkpoints_newest_first,
    readable_checkpoint,
    relative,
    saved_overrides,
    set_damage_aside,
)
from rnnlab.run.folders import claim_run_folder, output_root, started_at
from rnnlab.sweeps.naming import SWEEP_COMMAND

# Override keys (or their first part) a resumed run may change; the rest are fixed by its checkpoint.
RESUMABLE = ("trainer", "scheduler", "callbacks", "logger", "paths", "test", "hydra")
LOCK = "run.lock"

log = logging.getLogger(__name__)


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def key_of(override: str) -> str:
    """`trainer.max_epochs` of `trainer.max_epochs=4`, `model` of `model=gru` or `+model=gru`."""
    return override.split("=", 1)[0].lstrip("+~")


def quoted(path: Path | str) -> str:
    """A value Hydra's override parser reads as one string (sweep folders have `=` and `,`)."""
    text = str(path)
    if '"' in text:
        raise UserError(f"{text}: a path with a double quote cannot be passed to Hydra; rename it")
    return f'"{text}"'


def newest_checkpoint(run_dir: Path) -> Path | None:
    found = checkpoints_newest_first(run_dir)  # last, interrupted or best-*: readable or not
    return found[0] if found else None


def process_start(pid: int) -> int | None:
    """When a process started (clock ticks since boot, from /proc), which tells it from a later process
    that got the same pid; None where /proc cannot say."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def lock_text() -> str:
    """What `run.lock` holds: this process's pid and when it started."""
    started = process_start(os.getpid())
    return f"{os.getpid()}" + (f" {started}" if started is not None else "") + "\n"


def writer_of(run_dir: Path) -> int | None:
    """The pid of a live process that holds the run's lock, if any (a stale or unreadable lock is ignored)."""
    try:
        fields = (run_dir / LOCK).read_text().split()
        pid, started = int(fields[0]), int(fields[1]) if len(fields) > 1 else None
    except (OSError, ValueError, IndexError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, someone else's
    if started is not None and process_start(pid) not in (None, started):
        return None  # the pid now belongs to another process (or the lock was damaged)
    stat = Path(f"/proc/{pid}/stat")
    if stat.is_file() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z":
        return None  # killed, not yet reaped by its parent
    return pid


def check_not_busy(run_dir: Path, what: str) -> None:
    pid = writer_of(run_dir)
    if pid is not None:
        raise UserError(
            f"{what}: process {pid} is still writing to {run_dir}; stop it first (or let it finish)"
        )


# -- the command line -----------------------------------------------------------------------------
def rewrite_command(args: list[str]) -> list[str]:
    """The command-line arguments (after the script's name) with `resume=...` made concrete.

    `ckpt_path=last` means `resume=last`. A new run gets a folder of its own (`claim_run_folder`).
    The command of a data-parallel worker is returned unchanged: Lightning starts it with the
    rewritten one.
    """
    if int(os.environ.get("LOCAL_RANK", "0") or 0) > 0:
        return args
    value = next((unquote(a.split("=", 1)[1]) for a in args if key_of(a) == "resume"), None)
    if value is None and "ckpt_path=last" in args:
        value = "last"
    if value is None:
        return claim_run_folder(args)  # a new run: a folder of its own, even if others start this second
    options = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-") and key_of(a) not in ("resume", "ckpt_path")]
    root = output_root(overrides)
    sweep = bool({"-m", "--multirun"} & set(options)) or any(key_of(a) == "hparams_search" for a in overrides)
    if sweep:
        return [*options, *_resume_sweep(value, root, overrides)]
    return [*options, *_resume_run(value, root, overrides)]


def _resume_run(value: str, root: Path, overrides: list[str]) -> list[str]:
    if value == "last":
        found = {p.parent.parent for p in root.glob("**/checkpoints/*.ckpt")}
        if not found:
            raise UserError(f"resume=last: no run under {root} has a checkpoint; give a run folder")
        run_dir = max(found, key=started_at)  # the run started last, whatever its folder's name
    else:
        run_dir = Path(value)
    run_dir = run_dir.resolve()
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise UserError(
            f"resume={value}: {run_dir} is not a run folder (no .hydra/overrides.yaml); "
            "give the folder a run prints as 'run dir:'"
        )
    if newest_checkpoint(run_dir) is None:
        raise UserError(
            f"resume={value}: {run_dir} has no checkpoints/last.ckpt (it stopped before its first "
            "checkpoint); start it again without resume="
        )
    check_not_busy(run_dir, f"resume={value}")
    fixed = [
        a for a in overrides if key_of(a).split(".")[0] not in RESUMABLE and not same_as_saved(a, run_dir)
    ]
    if fixed:
        raise UserError(
            f"{fixed[0]} cannot change in a resumed run (its checkpoint fixes the network, data, task "
            f"and optimiser); only {', '.join(k + '.*' for k in RESUMABLE[:5])} and test can. "
            "To train something else, start a new run (ckpt_path=PATH starts one from a checkpoint)"
        )
    new_keys = {key_of(a) for a in overrides}
    kept = [
        a
        for a in saved_overrides(run_dir)
        if key_of(a) not in new_keys and key_of(a) not in ("resume", "ckpt_path", "hydra.run.dir")
    ]
    return [*kept, *overrides, f"hydra.run.dir={quoted(run_dir)}", f"resume={quoted(run_dir)}"]


def same_as_saved(override: str, run_dir: Path) -> bool:
    """Whether `override` asks for what the run already has (the command it was started with, repeated).

    A group choice (`model=rnn`, `experiment=d2l_lstm`) is compared with the run's composed choices
    (`.hydra/hydra.yaml`), a value (`seed=7`, `model.hidden_size=32`) with its composed config
    (`.hydra/config.yaml`); a run folder without them is compared with its saved overrides only.
    """
    if "=" not in override or override.startswith("~"):
        return False
    key, value = key_of(override), override.split("=", 1)[1]
    try:
        saved = [a.lstrip("+") for a in read_overrides(run_dir / ".hydra" / "overrides.yaml")]
    except Unreadable:
        saved = []
    if f"{key}={value}" in saved:
        return True
    runtime = _saved_yaml(run_dir / ".hydra" / "hydra.yaml").get("hydra", {}).get("runtime", {})
    choices = runtime.get("choices") if isinstance(runtime, dict) else None
    if isinstance(choices, dict) and key in choices:
        return str(choices[key]) == unquote(value)
    config: object = _saved_yaml(run_dir / ".hydra" / "config.yaml")
    for part in key.split("."):
        if not isinstance(config, dict) or part not in config:
            return False
        config = config[part]
    try:
        return config == yaml.safe_load(unquote(value))
    except yaml.YAMLError:
        return False


def _saved_yaml(path: Path) -> dict:
    """A run's saved Hydra file as plain data; an absent or unreadable one reads as empty (then the
    override counts as a change, and a changed fixed setting is refused as before)."""
    try:
        return read_yaml(path)
    except Unreadable:
        return {}


def _resume_sweep(value: str, root: Path, overrides: list[str]) -> list[str]:
    if value == "last":
        found = list((root / "multirun").glob(f"*/*/{SWEEP_COMMAND}"))
        if not found:
            raise UserError(f"resume=last: no sweep under {root / 'multirun'}; give a sweep folder")
        sweep_dir = max(found, key=lambda p: p.stat().st_mtime).parent
    else:
        sweep_dir = Path(value)
    sweep_dir = sweep_dir.resolve()
    saved = sweep_dir / SWEEP_COMMAND
    if not saved.is_file():
        raise UserError(f"resume={value}: {sweep_dir} is not a sweep folder (no {SWEEP_COMMAND})")
    before = read_yaml(saved).get("overrides") or []
    if not isinstance(before, list):
        raise Unreadable(saved, "has no list of overrides")
    task = [a for a in overrides if not key_of(a).startswith(("hydra.", "hydra/"))]  # as Hydra splits them
    if sorted(before) != sorted(task):
        command = " ".join(before) or "no overrides"
        raise UserError(
            f"resume={value}: {sweep_dir} was swept by another command ({command}); "
            "repeat that command with resume="
        )
    return [*overrides, f"hydra.sweep.dir={quoted(sweep_dir)}", f"resume={quoted(sweep_dir)}"]


# -- inside a run ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobPlan:
    action: str  # "resume", "skip" (completed before), "rerun" (failed before) or "start"
    checkpoint: Path | None = None
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
        return JobPlan("skip", None, previous)
    if in_sweep and status == "failed":
        return JobPlan("rerun", None, previous)
    choice = readable_checkpoint(run_dir)
    if choice.checkpoint is None and not in_sweep:
        if not choice.lost:
            raise UserError(f"resume: {run_dir} has no checkpoint to resume from")
        problems = "; ".join(f"{relative(e.path, run_dir)}: {e.reason}" for e in choice.lost)
        raise UserError(f"resume: no checkpoint of {run_dir} can be read ({problems}); start it again")
    lost = set_damage_aside(run_dir, choice, damaged_metrics)
    if choice.checkpoint is None:
        return JobPlan("start", None, previous, tuple(lost))
    return JobPlan("resume", choice.checkpoint, previous, tuple(lost))
