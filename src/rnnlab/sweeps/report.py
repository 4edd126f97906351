"""`SweepReport`: a Hydra callback that lists the failed jobs of a `-m` sweep and fails its exit status.

A job that fails (a NaN loss, a bad combination, out of memory) records its error in its own
`metrics.json` and returns NaN, so the launcher goes on with the other jobs. At the end of the sweep
(and of a resumed sweep, whose jobs record what `resume=` did with them) this callback reads every
job's `metrics.json` from the sweep directory (a damaged one is listed as `unreadable: FILE: REASON`
and fails the status too): that works the same whether
jobs ran in this process (basic launcher, Optuna) or elsewhere (joblib workers, SLURM jobs). Kept
free of torch and lightning so that composing configs stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

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


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        outcomes = job_outcomes(Path(config.hydra.sweep.dir))
        if config.get("resume"):
            report_resume(outcomes)
        failed = {job: m for job, m in outcomes.items() if m.get("status") != "completed"}
        if not failed:
            log.info("sweep done: all %d jobs completed", len(outcomes))
            return
        unreadable = sum(m.get("status") == "unreadable" for m in failed.values())
        also = f" ({unreadable} unreadable)" if unreadable else ""
        log.error("sweep done: %d of %d jobs failed%s", len(failed), len(outcomes), also)
        for job, metrics in failed.items():
            log.error("  %s: %s", job, metrics.get("error", f"status {metrics.get('status', 'unknown')}"))
        raise SystemExit(1)
