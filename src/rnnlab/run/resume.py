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

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from rnnlab.errors import UserError
from rnnlab.sweeps.naming import SWEEP_COMMAND

# Override keys (or their first part) a resumed run may change; the rest are fixed by its checkpoint.
RESUMABLE = ("trainer", "scheduler", "callbacks", "logger", "paths", "test", "hydra")
CHECKPOINTS = ("last.ckpt", "interrupted.ckpt")
LOCK = "run.lock"


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
    found = [run_dir / "checkpoints" / name for name in CHECKPOINTS]
    found = [path for path in found if path.is_file()]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


def writer_of(run_dir: Path) -> int | None:
    """The pid of a live process that holds the run's lock, if any (a stale lock is ignored)."""
    try:
        pid = int((run_dir / LOCK).read_text().strip())
    except (OSError, ValueError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, someone else's
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

    `ckpt_path=last` means `resume=last`. Any other command is returned unchanged, and so is the
    command of a data-parallel worker, which Lightning starts with the rewritten one.
    """
    if int(os.environ.get("LOCAL_RANK", "0") or 0) > 0:
        return args
    value = next((unquote(a.split("=", 1)[1]) for a in args if key_of(a) == "resume"), None)
    if value is None and "ckpt_path=last" in args:
        value = "last"
    if value is None:
        return args
    options = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-") and key_of(a) not in ("resume", "ckpt_path")]
    root = Path(
        next(
            (unquote(a.split("=", 1)[1]) for a in overrides if key_of(a) == "paths.output_root"),
            os.environ.get("RNNLAB_OUTPUT_DIR", "outputs"),
        )
    )
    sweep = bool({"-m", "--multirun"} & set(options)) or any(key_of(a) == "hparams_search" for a in overrides)
    if sweep:
        return [*options, *_resume_sweep(value, root, overrides)]
    return [*options, *_resume_run(value, root, overrides)]


def _resume_run(value: str, root: Path, overrides: list[str]) -> list[str]:
    if value == "last":
        found = [p.parent.parent for name in CHECKPOINTS for p in root.glob(f"**/checkpoints/{name}")]
        if not found:
            raise UserError(f"resume=last: no run under {root} has a checkpoint; give a run folder")
        run_dir = max(found, key=lambda d: newest_checkpoint(d).stat().st_mtime)
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
    fixed = [a for a in overrides if key_of(a).split(".")[0] not in RESUMABLE]
    if fixed:
        raise UserError(
            f"{fixed[0]} cannot change in a resumed run (its checkpoint fixes the network, data, task "
            f"and optimiser); only {', '.join(k + '.*' for k in RESUMABLE[:5])} and test can. "
            "To train something else, start a new run (ckpt_path=PATH starts one from a checkpoint)"
        )
    new_keys = {key_of(a) for a in overrides}
    kept = [
        a
        for a in yaml.safe_load(saved.read_text()) or []
        if key_of(a) not in new_keys and key_of(a) not in ("resume", "ckpt_path", "hydra.run.dir")
    ]
    return [*kept, *overrides, f"hydra.run.dir={quoted(run_dir)}", f"resume={quoted(run_dir)}"]


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
    before = (yaml.safe_load(saved.read_text()) or {}).get("overrides", [])
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


def job_plan(run_dir: Path, in_sweep: bool) -> JobPlan:
    """What a run started with `resume=` does in its folder.

    A single run always resumes from its newest checkpoint (the command line was checked). A sweep
    job skips itself if it completed, starts again if it failed (its error was its own), and
    otherwise resumes from its checkpoint, or starts if it never wrote one.
    """
    metrics_file = run_dir / "metrics.json"
    previous = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    status = (previous or {}).get("status")
    checkpoint = newest_checkpoint(run_dir)
    if in_sweep and status in ("completed", "pruned"):
        return JobPlan("skip", None, previous)
    if in_sweep and status == "failed":
        return JobPlan("rerun", None, previous)
    if checkpoint is None:
        if in_sweep:
            return JobPlan("start", None, previous)
        raise UserError(f"resume: {run_dir} has no checkpoint to resume from")
    return JobPlan("resume", checkpoint, previous)
