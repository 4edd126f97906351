"""Console progress: a TQDM bar in a terminal, plain log lines everywhere else."""

from __future__ import annotations

import logging
import sys
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar

log = logging.getLogger(__name__)


class LineProgress(ProgressBar):
    """Prints a log line every `every_n_steps` training steps instead of redrawing a bar.

    For CI logs, `nohup` and sweeps: a bar's carriage-return frames would fill them with noise.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        super().__init__()
        self.every_n_steps = every_n_steps
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._enabled or (batch_idx + 1) % self.every_n_steps:
            return
        metrics = self.get_metrics(trainer, pl_module)
        shown = "  ".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in metrics.items() if k.startswith("train/"))
        log.info(
            "epoch %d step %d/%d  %s",
            trainer.current_epoch + 1,
            batch_idx + 1,
            self.total_train_batches,
            shown,
        )


def choose_progress(style: str = "auto", refresh_rate: int = 10, every_n_steps: int = 50) -> ProgressBar:
    """`bar` (TQDM), `lines`, or `auto`: a bar when stdout is a terminal, else lines."""
    if style == "auto":
        style = "bar" if sys.stdout.isatty() else "lines"
    if style == "bar":
        return TQDMProgressBar(refresh_rate=refresh_rate)
    if style == "lines":
        return LineProgress(every_n_steps)
    raise ValueError(f"callbacks.progress.style={style!r} is unknown; choose auto, bar or lines")
