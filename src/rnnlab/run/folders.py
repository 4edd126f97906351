"""One folder per run: a new run claims a folder of its own before Hydra starts.

Hydra names a run's folder by the time (`outputs/<date>/<HH-MM-SS>`, conf/hydra/default.yaml) and
makes it with `exist_ok`, so two runs started in the same second would share one folder (and the
second would be refused by the first one's `run.lock`). `claim_run_folder` makes the folder itself
with a plain `mkdir`, which fails if the name is taken, so exactly one process gets each name; the
others take `<HH-MM-SS>-2`, `-3`, ... The folder is passed to Hydra as `hydra.run.dir`.

Processes of one data-parallel run keep sharing their folder: Lightning starts the other ranks with
the rewritten command line (and `LOCAL_RANK` set, see `rnnlab.run.resume.rewrite_command`), and
tasks that `srun` starts together (`SLURM_NTASKS` > 1) are left to Hydra's name, as before.

`started_at` orders runs by when they started, which is what `resume=last` means by the newest.
Kept free of torch and lightning.
"""

from __future__ import annotations

import contextlib
import os
import re
from datetime import datetime
from pathlib import Path

CLAIMED: list[Path] = []  # the folder this process made, removed again if the run never used it


def now() -> datetime:
    """The time a new run is named by (a test may fix it, to start runs 'in the same second')."""
    return datetime.now()


def output_root(overrides: list[str]) -> Path:
    """Where run folders go: `paths.output_root=` given, else $RNNLAB_OUTPUT_DIR, else ./outputs."""
    from rnnlab.run.resume import key_of, unquote

    given = [unquote(a.split("=", 1)[1]) for a in overrides if key_of(a) == "paths.output_root"]
    return Path(given[-1] if given else os.environ.get("RNNLAB_OUTPUT_DIR", "outputs"))


def claim_run_folder(args: list[str]) -> list[str]:
    """`args` with `hydra.run.dir=` a new, empty folder that no other run has, made here.

    Left unchanged: a command with options (`-m`, `--cfg`, `--help`, ...: no single run, or another
    config), one that names its folder (`hydra.run.dir=`), and one task of several that srun started.
    """
    from rnnlab.run.resume import key_of, quoted

    if any(a.startswith("-") for a in args) or any(key_of(a) == "hydra.run.dir" for a in args):
        return args
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
        return args
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
        return [*args, f"hydra.run.dir={quoted(folder)}"]


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
