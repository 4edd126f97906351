"""Sweep jobs named by what varies: `model=rnn`, not `data.max_tokens=60000,model=rnn,trainer.max_epochs=4`.

Hydra names each job's folder (and so its TensorBoard run) by `hydra.job.override_dirname`: all of
the job's overrides, less `hydra.job.config.override_dirname.exclude_keys`. `SweepNaming`, a Hydra
callback, runs once before the jobs are launched: it finds the keys that take several values (the
command line's sweeps, `a=1,2` or `glob(...)`, and the sweeper's search space `hydra.sweeper.params`)
and adds every other key to the excluded ones. Hydra re-composes each job's config with the sweep's
own `hydra.*` overrides, so every job, on every launcher, sees the same list. The full override list
stays in each job's `.hydra/overrides.yaml` and `metrics.json`.

It also records the sweep's overrides in `sweep_command.yaml`, which `resume=SWEEP_DIR` compares
with the command that resumes it.

The `rnnlab.job_name` resolver (in `conf/hydra/default.yaml`) keeps a name within the file-name limit
and free of `/`. Kept free of torch and lightning so that composing configs stays fast.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

log = logging.getLogger(__name__)

MAX_NAME = 200  # bytes; a file name may have 255, and Hydra or TensorBoard may add a suffix


def job_name(override_dirname: str, job_num: Any) -> str:
    """The folder name of a job: its varying overrides, `/` made safe, long ones cut with a hash."""
    name = override_dirname.replace("/", "_") or f"job{job_num}"
    if len(name.encode()) <= MAX_NAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name.encode()[: MAX_NAME - 11].decode(errors='ignore')}-{digest}"


OmegaConf.register_new_resolver("rnnlab.job_name", job_name, replace=True)


def varying_keys(task_overrides: list[str], sweeper_params: dict[str, Any] | None) -> set[str]:
    """The keys a sweep gives several values: `k=a,b`, `k=range(..)`, `k=glob(..)`, or a search space."""
    parsed = OverridesParser.create().parse_overrides(task_overrides)
    return {o.key_or_group for o in parsed if o.is_sweep_override()} | set(sweeper_params or {})


SWEEP_COMMAND = "sweep_command.yaml"  # the sweep's overrides, which `resume=SWEEP_DIR` must repeat


def record_command(config: DictConfig) -> None:
    """The command-line overrides of the sweep, in its folder (Optuna's sweeper writes no multirun.yaml)."""
    sweep_dir = Path(config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    overrides = [o for o in config.hydra.overrides.task if not o.startswith("resume=")]
    (sweep_dir / SWEEP_COMMAND).write_text(yaml.safe_dump({"overrides": overrides}))


class SweepNaming(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        record_command(config)
        task = list(config.hydra.overrides.task)
        varying = varying_keys(task, config.hydra.sweeper.get("params"))
        if not varying:  # nothing varies: keep every override in the name
            return
        fixed = {o.key_or_group for o in OverridesParser.create().parse_overrides(task)} - varying
        # A key excluded by default (a path) that varies names the job all the same, or jobs would collide.
        defaults = [
            key for key in config.hydra.job.config.override_dirname.exclude_keys if key not in varying
        ]
        excluded = [*defaults, *sorted(fixed)]
        with read_write(config.hydra.overrides):
            config.hydra.overrides.hydra.append(
                f"hydra.job.config.override_dirname.exclude_keys=[{','.join(excluded)}]"
            )
        log.info("sweep: jobs named by %s", ", ".join(sorted(varying)))
