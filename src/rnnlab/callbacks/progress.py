"""Console progress: a TQDM bar in a terminal, plain log lines everywhere else; an epoch line in both."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar
from tqdm import tqdm

log = logging.getLogger(__name__)


class EpochLines:
    """A mixin for progress callbacks: one log line per training epoch, with the headline metric on
    training and validation and the throughput (`epoch 3/20  train ppl 6.1  val ppl 6.4  85,000 tokens/s`).

    The task logs its epoch metrics in its own `on_train_epoch_end`, which Lightning calls after the
    callbacks' one; so the line of an epoch is printed when the next one starts (or training ends).
    """

    _finished_epoch: int | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._finished_epoch = trainer.current_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print_epoch_line(trainer, pl_module)
        super().on_train_epoch_start(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._print_epoch_line(trainer, pl_module)

    def _print_epoch_line(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch, self._finished_epoch = self._finished_epoch, None
        metric, unit = pl_module.metric, pl_module.throughput_unit
        logged = trainer.callback_metrics
        train = logged.get(f"train/{metric}")
        if epoch is None or train is None or not trainer.is_global_zero:
            return
        validated = pl_module.validated_epoch == epoch  # else val/* are an earlier epoch's
        val, rate = logged.get(f"val/{metric}") if validated else None, logged.get(f"train/{unit}_per_s")
        also = "".join(
            f"  val {name} {logged[f'val/{name}']:.4g}"
            for name in pl_module.also_reported
            if validated and f"val/{name}" in logged
        )
        log.info(
            "epoch %d/%d  train %s %.4g  val %s %s%s  %s %s/s",
            epoch + 1,
            trainer.max_epochs if trainer.max_epochs not in (None, -1) else "-",
            metric,
            train,
            metric,
            "-" if val is None else f"{val:.4g}",
            also,
            "-" if rate is None else f"{rate:,.0f}",
            unit,
        )


class _BarSafeStream:
    """A console stream whose writes go through `tqdm.write`, which lifts the bars off the screen,
    prints the line, and redraws them: a log line never lands inside a bar's line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        tqdm.write(text, file=self.stream, end="")

    def flush(self) -> None:
        self.stream.flush()


class BarProgress(EpochLines, TQDMProgressBar):
    """Lightning's TQDM bar, with the epoch lines; epochs counted from 1, as the log lines count them.

    While the trainer runs, the console's log handlers write through `tqdm.write`.
    """

    _redirected: list[tuple[logging.StreamHandler, TextIO]]

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._redirected = []
        for handler in logging.getLogger().handlers:
            console = type(handler) is logging.StreamHandler and handler.stream in (sys.stdout, sys.stderr)
            if console:
                self._redirected.append((handler, handler.setStream(_BarSafeStream(handler.stream))))

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for handler, stream in getattr(self, "_redirected", []):
            handler.setStream(stream)
        self._redirected = []
        super().teardown(trainer, pl_module, stage)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        of = f"/{trainer.max_epochs}" if trainer.max_epochs not in (None, -1) else ""
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}{of}")


class LineProgress(EpochLines, ProgressBar):
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
        return BarProgress(refresh_rate=refresh_rate)
    if style == "lines":
        return LineProgress(every_n_steps)
    raise ValueError(f"callbacks.progress.style={style!r} is unknown; choose auto, bar or lines")
