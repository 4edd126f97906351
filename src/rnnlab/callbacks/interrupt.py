"""`InterruptCheckpoint`: on Ctrl-C or SIGTERM, finish the batch, save, and say how to resume."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from rnnlab.overrides import hydra_quoted, shell_command

log = logging.getLogger(__name__)

# The signal that stopped the last fit (SIGINT or SIGTERM), for the process's exit status.
received_signal: int | None = None


class InterruptCheckpoint(Callback):
    """Saves `<dirpath>/<filename>.ckpt` when training is interrupted, and only then.

    Ctrl-C is turned into SIGTERM: Lightning finishes the batch in hand and stops at its end, so
    the checkpoint holds a consistent state (whole optimiser steps, the sampler's position, the
    carried hidden state) and the run resumes exactly. A KeyboardInterrupt raised at an arbitrary
    bytecode could land between two pieces of a truncated-BPTT batch, or inside code that swallows
    it. A second Ctrl-C stops at once, as usual.

    Lightning's `OnExceptionCheckpoint` is close, but it saves on every exception (a non-finite loss
    would checkpoint broken weights next to the good ones), and its presence makes every `fit`
    without `ckpt_path` try to resume from "last". This keeps only the save-on-interrupt part.
    """

    def __init__(self, dirpath: str, run_dir: str | None = None, filename: str = "interrupted") -> None:
        self.ckpt_path = str(Path(dirpath) / f"{filename}.ckpt")
        self.run_dir = Path(run_dir or Path(dirpath).parent).resolve()
        self._previous_handler: Any = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        global received_signal
        received_signal = None
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; Ctrl-C keeps its default there

        def stop_after_this_batch(signum: int, frame: Any) -> None:
            global received_signal
            received_signal = signum
            log.warning("Ctrl-C: stopping after this batch, as on SIGTERM (press again to stop at once)")
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: stop now
            signal.raise_signal(signal.SIGTERM)  # Lightning's handler: stop at the end of the batch

        self._previous_handler = signal.signal(signal.SIGINT, stop_after_this_batch)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        global received_signal
        if not isinstance(exception, KeyboardInterrupt | SIGTERMException):
            return
        if isinstance(exception, SIGTERMException) and received_signal is None:
            received_signal = signal.SIGTERM
        trainer.save_checkpoint(self.ckpt_path, weights_only=False)
        if trainer.is_global_zero:
            # quoted twice: for Hydra (sweep folders have '=' and ',' in their names), then for the shell
            log.warning(
                "interrupted at epoch %d, step %d: saved %s. Resume with: %s",
                trainer.current_epoch + 1,
                trainer.global_step,
                Path(self.ckpt_path).resolve(),
                shell_command("scripts/train.py", [f"resume={hydra_quoted(self.run_dir)}"]),
            )
