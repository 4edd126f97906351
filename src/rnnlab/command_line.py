"""The command line, rewritten before Hydra starts: a new run's own folder, and `resume=` made concrete.

Hydra must know a run's (or a sweep's) folder before it starts, so `rewrite_command` runs first, in
`scripts/train.py`, and refuses what cannot work in one line, before anything is written:

- A new run claims a folder of its own (`claim_run_folder`). Hydra names a run's folder by the time
  (`outputs/<date>/<HH-MM-SS>`, conf/hydra/default.yaml) and makes it with `exist_ok`, so two runs
  started in the same second would share one; here the folder is made with a plain `mkdir`, which
  fails if the name is taken, so exactly one process gets each name and the others take
  `<HH-MM-SS>-2`, `-3`, ... Processes of one data-parallel run share their folder: Lightning starts
  the other ranks with the rewritten command line (`LOCAL_RANK` set), and the tasks that `srun`
  starts for one job step all name it `<output root>/slurm-<job id>.<step id>` (`rnnlab.slurm`),
  which a requeued job finds again.
- `resume=RUN_DIR` (or `last`, the run started last: `started_at`) becomes the run's saved overrides
  plus the new ones, which may only change how long and how it is run (`RESUMABLE`), and its folder.
- Under `-m`, `resume=SWEEP_DIR` re-runs a sweep into its folder, if the command is the sweep's own.

What a resumed run then does in its folder is `rnnlab.run.resume`. Kept free of torch and lightning.
"""

from __future__ import annotations

import contextlib
import os
import re
from datetime import datetime
from pathlib import Path

import yaml

from rnnlab import slurm
from rnnlab.checkpoint import newest_checkpoint
from rnnlab.errors import UserError
from rnnlab.overrides import hydra_quoted, key_of, saved_overrides, unquoted, value_of
from rnnlab.readback import Unreadable, read_overrides, read_yaml
from rnnlab.run.lock import check_not_busy
from rnnlab.sweeps.naming import SWEEP_COMMAND

# Override keys (or their first part) a resumed run may change; the rest are fixed by its checkpoint.
RESUMABLE = ("trainer", "scheduler", "callbacks", "logger", "paths", "test", "hydra")

CLAIMED: list[Path] = []  # the folder this process made, removed again if the run never used it


def now() -> datetime:
    """The time a new run is named by (a test may fix it, to start runs 'in the same second')."""
    return datetime.now()


def output_root(overrides: list[str]) -> Path:
    """Where run folders go: `paths.output_root=` given, else $RNNLAB_OUTPUT_DIR, else ./outputs."""
    given = [value_of(a) for a in overrides if key_of(a) == "paths.output_root"]
    return Path(given[-1] if given else os.environ.get("RNNLAB_OUTPUT_DIR", "outputs"))


def claim_run_folder(args: list[str]) -> list[str]:
    """`args` with `hydra.run.dir=` a new, empty folder that no other run has, made here.

    Left unchanged: a command with options (`-m`, `--cfg`, `--help`, ...: no single run, or another
    config), and one that names its folder (`hydra.run.dir=`). In a job step srun started, the folder
    is the step's (`slurm-<job id>.<step id>`), the same for all its tasks and after a requeue.
    """
    if any(a.startswith("-") for a in args) or any(key_of(a) == "hydra.run.dir" for a in args):
        return args
    step_folder = slurm.step_run_folder_name()
    if step_folder is not None:
        folder = output_root(args) / step_folder
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)  # every task makes it; a requeued job finds it
            CLAIMED.append(folder)  # removed again if still empty when the command starts no run
        named = [*args, f"hydra.run.dir={hydra_quoted(folder.resolve())}"]
        task = int(os.environ.get("SLURM_PROCID", "0") or 0)
        if task == 0:
            return named
        # as Lightning starts its other processes: a log of their own, the run's .hydra/ left to task 0
        return [*named, f"hydra.job.name=train_ddp_process_{task}", "hydra.output_subdir=null"]
    started = now()
    base = output_root(args) / started.strftime("%Y-%m-%d") / started.strftime("%H-%M-%S")
    made = [folder for folder in (base.parent, *base.parent.parents) if not folder.exists()]
    number = 1
    while True:
        folder = base if number == 1 else base.with_name(f"{base.name}-{number}")
        try:
            folder.mkdir()  # atomic: of processes making the same name at once, one succeeds
        except FileExistsError:
            number += 1
            continue
        except FileNotFoundError:  # no date folder yet (or one just removed by a run that never began)
            base.parent.mkdir(parents=True, exist_ok=True)
            continue
        CLAIMED.extend([folder, *made])  # the run's folder, then the folders made for it, innermost first
        return [*args, f"hydra.run.dir={hydra_quoted(folder)}"]


def release_unused() -> None:
    """Remove the claimed folder, and the folders made for it, if the run never wrote into them (a
    config error stopped Hydra): a command that starts no run leaves nothing behind."""
    while CLAIMED:
        with contextlib.suppress(OSError):
            CLAIMED.pop(0).rmdir()  # only an empty folder


EVENTS = re.compile(r"events\.out\.tfevents\.(\d+)\.")
NAMED_BY_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})/(\d{2}-\d{2}-\d{2})(?:-\d+)?$")


def started_at(run_dir: Path) -> float:
    """When a run started (seconds since the epoch): the time in its first TensorBoard events file's
    name (a resume adds newer files and rewrites `.hydra/` and checkpoints), else the time in its
    folder's name (`<date>/<HH-MM-SS>[-N]`), else its oldest file's modification time."""
    stamps = [int(m.group(1)) for p in run_dir.glob("events.out.tfevents.*") if (m := EVENTS.match(p.name))]
    if stamps:
        return float(min(stamps))
    named = NAMED_BY_TIME.search(run_dir.as_posix())
    if named:
        return datetime.strptime(" ".join(named.groups()), "%Y-%m-%d %H-%M-%S").timestamp()
    times = [p.stat().st_mtime for p in run_dir.rglob("*") if p.is_file()]
    return min(times, default=run_dir.stat().st_mtime)


# -- the command line -----------------------------------------------------------------------------
def rewrite_command(args: list[str]) -> list[str]:
    """The command-line arguments (after the script's name) with `resume=...` made concrete.

    `ckpt_path=last` means `resume=last`. A new run gets a folder of its own (`claim_run_folder`).
    The command of a data-parallel worker is returned unchanged: Lightning starts it with the
    rewritten one.
    """
    if int(os.environ.get("LOCAL_RANK", "0") or 0) > 0:
        return args
    value = next((value_of(a) for a in args if key_of(a) == "resume"), None)
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
    return [*kept, *overrides, f"hydra.run.dir={hydra_quoted(run_dir)}", f"resume={hydra_quoted(run_dir)}"]


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
        return str(choices[key]) == unquoted(value)
    config: object = _saved_yaml(run_dir / ".hydra" / "config.yaml")
    for part in key.split("."):
        if not isinstance(config, dict) or part not in config:
            return False
        config = config[part]
    try:
        return config == yaml.safe_load(unquoted(value))
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
    return [*overrides, f"hydra.sweep.dir={hydra_quoted(sweep_dir)}", f"resume={hydra_quoted(sweep_dir)}"]
