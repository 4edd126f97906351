"""What a run does differently inside a SLURM job: its folder, its cluster environment, its requeue.

- **One folder per job step.** The processes that `srun` starts for one run (the tasks of a
  data-parallel run) name their folder alike, `<output root>/slurm-<job id>.<step id>`
  (`step_run_folder`), so they need no `hydra.run.dir`; a requeued job, whose steps are numbered
  from 0 again, finds its folder and goes on there.
- **One requeue mechanism.** Lightning's SLURM auto-requeue (save at once, inside the signal
  handler, wherever the step is, and `scontrol requeue`) is switched off (`cluster_plugins`);
  rnnlab's `InterruptCheckpoint` saves at the end of the batch in hand and then hands over to
  submitit's handler (under `hydra/launcher=submitit_slurm`) or runs `scontrol requeue` itself
  (`requeue`, under plain sbatch + srun).

Kept free of torch and lightning at import (the command line reads it before anything heavy loads).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from typing import Any

log = logging.getLogger(__name__)

# Job names that Lightning takes for an interactive shell inside an allocation (`srun --pty bash`):
# the runs started there are not tasks of one job step.
INTERACTIVE_JOB_NAMES = ("bash", "interactive")


def in_job() -> bool:
    """Whether this process runs inside a SLURM job (a batch script, or a step srun started)."""
    return bool(os.environ.get("SLURM_JOB_ID"))


def interactive() -> bool:
    return os.environ.get("SLURM_JOB_NAME") in INTERACTIVE_JOB_NAMES


def job_step() -> str | None:
    """`<job id>.<step id>` of the job step srun started this process in; None outside one (no SLURM,
    a batch script's own shell, an interactive shell)."""
    job, step = os.environ.get("SLURM_JOB_ID"), os.environ.get("SLURM_STEP_ID")
    if not job or not step or interactive():
        return None
    return f"{job}.{step}"


def step_run_folder_name() -> str | None:
    """The run folder's name every task of this job step agrees on, or None outside a job step."""
    step = job_step()
    return None if step is None else f"slurm-{step}"


def under_srun() -> bool:
    """Whether Lightning takes this process for one started by srun (its `SLURMEnvironment.detect`
    rule, without the hint it prints when srun exists but was not used)."""
    return "SLURM_NTASKS" in os.environ and not interactive()


def cluster_plugins() -> list[Any]:
    """Under srun, the cluster environment Lightning would detect, less its auto-requeue: a job is
    requeued by rnnlab after its checkpoint (or by submitit), never twice. Empty elsewhere."""
    if not under_srun():
        return []
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)]


def job_to_requeue() -> str | None:
    """The id `scontrol requeue` takes for this job (`<array job>_<task>` for an array's task)."""
    array_job, array_task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array_job}_{array_task}" if array_job and array_task else os.environ.get("SLURM_JOB_ID")
    return job if job and re.fullmatch(r"[0-9_]+", job) else None


def requeue() -> bool:
    """`scontrol requeue` this job (SLURM then stops it and starts it again, in the same folder: see
    `step_run_folder_name`). Returns whether SLURM accepted it; says why not."""
    job = job_to_requeue()
    if job is None:
        log.warning("not requeued: no SLURM job id in the environment")
        return False
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("not requeued: scontrol requeue %s failed (%s)", job, error)
        return False
    if done.returncode != 0:
        log.warning("not requeued: scontrol requeue %s: %s", job, (done.stderr or done.stdout).strip())
        return False
    log.warning("requeued SLURM job %s: it goes on from the checkpoint when it starts again", job)
    return True
