"""`SweepReport`: a Hydra callback that lists the failed jobs of a `-m` sweep and fails its exit status,
and says what to do next: the sweep's folder, the compare.py and tensorboard commands for it and, for
a search, the optuna-dashboard command for its study's storage.

A job that fails (a NaN loss, a bad combination, out of memory) records its error in its own
`metrics.json` and returns NaN, so the launcher goes on with the other jobs (a search's pruned trial
is not a failure; its trial that ends with a non-finite value is). At the end of the sweep (and of a
resumed sweep, whose jobs record what `resume=` did with them) this callback reads every job's
`metrics.json` from the sweep directory (a damaged one is listed as `unreadable: FILE: REASON` and
fails the status too): that works the same whether jobs ran in this process (basic launcher, Optuna)
or elsewhere (joblib workers, SLURM jobs). Kept free of torch and lightning so that composing configs
stays fast.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rnnlab.overrides import shell_word
from rnnlab.readback import Unreadable, read_json

log = logging.getLogger(__name__)


def job_outcomes(sweep_dir: Path) -> dict[Path, dict[str, Any]]:
    """Each job folder (one with `.hydra/`) under the sweep, with its metrics.json (empty if none; a
    damaged one reads as status `unreadable`, with the reason as its error)."""
    outcomes = {}
    for hydra_dir in sorted(sweep_dir.rglob(".hydra")):
        metrics_file = hydra_dir.parent / "metrics.json"
        try:
            outcomes[hydra_dir.parent] = read_json(metrics_file) if metrics_file.exists() else {}
        except Unreadable as error:
            outcomes[hydra_dir.parent] = {"status": "unreadable", "error": str(error)}
    return outcomes


def report_resume(outcomes: dict[Path, dict[str, Any]]) -> None:
    """After `resume=SWEEP_DIR`: which jobs were skipped, resumed, run again or started."""
    verbs = {"skip": "skipped", "resume": "resumed", "rerun": "run again", "start": "started"}
    for action, verb in verbs.items():
        jobs = [job.name for job, m in outcomes.items() if m.get("resume_action") == action]
        if jobs:
            log.info("resume: %d %s: %s", len(jobs), verb, ", ".join(jobs))


def failure(metrics: dict[str, Any], search: bool) -> str | None:
    """Why a job failed, or None. A search's trial also fails when its monitored value is not finite
    (the search records it as a failed trial); a pruned trial did not fail."""
    status = metrics.get("status", "unknown")
    if status not in ("completed", "pruned"):
        return metrics.get("error", f"status {status}")
    monitor = metrics.get("monitor", "")
    value = metrics.get(monitor.replace("/", "_"))
    if search and status == "completed" and not (isinstance(value, int | float) and math.isfinite(value)):
        return f"its {monitor or 'monitored metric'} was {value}"
    return None


def without_password(url: str) -> str:
    """A storage URL fit to print: `postgresql://user:***@host/db` (a password never reaches a log)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def next_steps(sweep_dir: Path, storage: str | None) -> list[str]:
    """What a finished sweep (or search) says to do next, one command a line, each ready to paste; a
    search's study (`storage`: its URL) is one optuna-dashboard command away."""
    folder = shell_word(str(sweep_dir))
    lines = [
        f"sweep dir: {sweep_dir}",
        f"compare its runs: python scripts/compare.py {folder}",
        f"look at it: tensorboard --logdir {folder}",
    ]
    if storage is not None:
        lines.append(f"the study: optuna-dashboard {shell_word(without_password(storage))}")
    return lines


def search_storage(config: DictConfig) -> str | None:
    """The storage URL of a search's study (rnnlab's Optuna sweeper), None for a plain sweep."""
    sweeper = OmegaConf.select(config, "hydra.sweeper", default=None)
    if sweeper is None or "optuna" not in str(sweeper.get("_target_", "")).lower():
        return None
    from rnnlab.search.study import storage_url

    return storage_url(sweeper.get("storage"), Path(config.hydra.sweep.dir))


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        outcomes = job_outcomes(sweep_dir)
        if config.get("resume"):
            report_resume(outcomes)
        storage = search_storage(config)
        errors = {job: failure(m, storage is not None) for job, m in outcomes.items()}
        failed = {job: error for job, error in errors.items() if error}
        if not failed:
            pruned = sum(m.get("status") == "pruned" for m in outcomes.values())
            log.info(
                "sweep done: all %d jobs completed%s", len(outcomes), f" ({pruned} pruned)" * bool(pruned)
            )
        else:
            unreadable = sum(outcomes[job].get("status") == "unreadable" for job in failed)
            also = f" ({unreadable} unreadable)" if unreadable else ""
            log.error("sweep done: %d of %d jobs failed%s", len(failed), len(outcomes), also)
            for job, error in failed.items():
                log.error("  %s: %s", job, error)
        for line in next_steps(sweep_dir, storage):  # a failed sweep's other jobs are worth a look too
            log.info("%s", line)
        if failed:
            raise SystemExit(1)
