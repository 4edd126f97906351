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


def logged_train_metrics(trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float] | None:
    """The training metrics the task logged in the batch just ended, as numbers (None if it logged
    none then). Read only then, when the host has waited for the device anyway: the task keeps its
    step metrics off Lightning's progress-bar values, which are read back after every batch."""
    step, names = getattr(pl_module, "step_logged", None) or (None, ())
    if step != trainer.global_step:
        return None
    logged = trainer.callback_metrics
    return {name.split("/", 1)[-1]: float(logged[name]) for name in names if name in logged}


class StepCount:
    """A mixin for progress callbacks: where the epoch stands, in optimiser steps (the unit of every
    count rnnlab shows; a loader batch may hold several, `rnnlab.run.step_units`)."""

    _epoch_start: int | None = None
    _shown: dict[str, Any] = {}  # the training metrics last logged, as shown (replaced, never mutated)

    def epoch_steps_total(self, trainer: L.Trainer, pl_module: L.LightningModule) -> int | float:
        """The optimiser steps this epoch will take (inf for an endless loader)."""
        batches = trainer.num_training_batches
        if batches == float("inf"):
            return batches
        steps = getattr(pl_module, "steps_in_epoch", None)
        return steps(trainer) if steps is not None else batches

    def epoch_steps_done(self, trainer: L.Trainer, pl_module: L.LightningModule, batch_idx: int) -> int:
        """Optimiser steps of this epoch done after batch `batch_idx` (also in an epoch resumed midway,
        whose first batch here is not its first)."""
        if self._epoch_start is None or batch_idx == 0:
            per_batch = getattr(pl_module, "steps_per_batch", 1)
            self._epoch_start = trainer.global_step - (batch_idx + 1) * per_batch
        return trainer.global_step - self._epoch_start

    def forget_epoch(self) -> None:
        self._epoch_start = None


class _BarSafeStream:
    """A console stream whose writes go through `tqdm.write`, which lifts the bars off the screen,
    prints the line, and redraws them: a log line never lands inside a bar's line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        tqdm.write(text, file=self.stream, end="")

    def flush(self) -> None:
        self.stream.flush()


class BarProgress(StepCount, EpochLines, TQDMProgressBar):
    """Lightning's TQDM bar, with the epoch lines; epochs counted from 1, as the log lines count them,
    and the training bar in optimiser steps (redrawn every `refresh_rate` steps).

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
        self.forget_epoch()
        self.train_progress_bar.total = self.epoch_steps_total(trainer, pl_module)
        of = f"/{trainer.max_epochs}" if trainer.max_epochs not in (None, -1) else ""
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}{of}")

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        bar = self.train_progress_bar
        before = bar.n
        done = self.epoch_steps_done(trainer, pl_module, batch_idx)
        every = self.refresh_rate
        if bar.disable or not every:
            return
        logged = logged_train_metrics(trainer, pl_module)
        if logged:
            self._shown = {name: f"{value:.4g}" for name, value in logged.items()}
        if done // every > before // every or done >= (bar.total or 0):
            bar.n = done
            shown = {**self.get_metrics(trainer, pl_module), **self._shown}
            bar.set_postfix(shown)  # redraws the bar


class LineProgress(StepCount, EpochLines, ProgressBar):
    """Prints a log line every `every_n_steps` optimiser steps instead of redrawing a bar.

    For CI logs, `nohup` and sweeps: a bar's carriage-return frames would fill them with noise.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        super().__init__()
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._last_done = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self.forget_epoch()
        self._last_done = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        done = self.epoch_steps_done(trainer, pl_module, batch_idx)
        before, self._last_done = self._last_done, done
        logged = logged_train_metrics(trainer, pl_module)
        if logged:
            self._shown = logged
        if not self._enabled or done // self.every_n_steps == before // self.every_n_steps:
            return
        shown = "  ".join(f"{name} {value:.4g}" for name, value in self._shown.items())
        total = self.epoch_steps_total(trainer, pl_module)
        log.info(
            "epoch %d step %d/%s  %s",
            trainer.current_epoch + 1,
            done,
            "-" if total == float("inf") else total,
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
