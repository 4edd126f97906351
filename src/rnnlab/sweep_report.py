"""`SweepReport`: a Hydra callback that lists the failed jobs of a `-m` sweep and fails its exit status.

A job that fails (a NaN loss, a bad combination, out of memory) records its error in its own
`metrics.json` and returns NaN, so the launcher goes on with the other jobs; this callback reads those
files as jobs end. Kept free of torch and lightning so that composing configs stays fast.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepReport(Callback):
    def __init__(self) -> None:
        self.jobs = 0
        self.failed: list[tuple[str, str]] = []

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        run_dir = Path(job_return.hydra_cfg.hydra.runtime.output_dir)
        self.jobs += 1
        metrics_file = run_dir / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        if metrics.get("status") != "completed":
            self.failed.append(
                (str(run_dir), metrics.get("error", f"status {metrics.get('status', 'unknown')}"))
            )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.failed:
            log.info("sweep done: all %d jobs completed", self.jobs)
            return
        log.error("sweep done: %d of %d jobs failed", len(self.failed), self.jobs)
        for run_dir, error in self.failed:
            log.error("  %s: %s", run_dir, error)
        raise SystemExit(1)
