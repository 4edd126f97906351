"""`InterruptCheckpoint`: on Ctrl-C or SIGTERM, finish the batch, save, and say how to resume; in a
SLURM job, on SIGUSR1 or SIGUSR2 (preemption or time limit), the same and then requeue the job."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from rnnlab import slurm
from rnnlab.overrides import hydra_quoted, shell_command

log = logging.getLogger(__name__)

# The signal that stopped the last fit (SIGINT, SIGTERM, SIGUSR1 or SIGUSR2), for the exit status.
received_signal: int | None = None
# Lightning's convention (`#SBATCH --signal=USR1@90`) and submitit's (USR2 before the time limit, and
# `scancel -s USR2` for a preemption): save, then requeue the job.
REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)
# What handled a requeue signal before this callback took it over (submitit's handler, which requeues
# the job and exits): called once the checkpoint is written (`requeue_if_asked`).
_handed_over: dict[int, Any] = {}


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

    In a SLURM job, SIGUSR1 and SIGUSR2 do the same (the job is preempted or near its time limit),
    and then the job is requeued (`requeue_if_asked`): by the handler that submitit set for USR2
    under `hydra/launcher=submitit_slurm`, else by `scontrol requeue`. Lightning's own requeue is off
    (`rnnlab.slurm.cluster_plugins`), so one mechanism requeues, after the checkpoint.
    """

    def __init__(self, dirpath: str, run_dir: str | None = None, filename: str = "interrupted") -> None:
        self.ckpt_path = str(Path(dirpath) / f"{filename}.ckpt")
        self.run_dir = Path(run_dir or Path(dirpath).parent).resolve()
        self._previous_handler: Any = None
        self._previous_requeue_handlers: dict[int, Any] = {}

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

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, not at fit start: Lightning's SIGTERM handler, which this one raises, is set by now.
        _handed_over.clear()
        if not slurm.in_job() or threading.current_thread() is not threading.main_thread():
            return  # outside SLURM, USR1 and USR2 keep their meaning

        def save_then_requeue(signum: int, frame: Any) -> None:
            global received_signal
            received_signal = signum
            log.warning(
                "%s: the job is preempted or near its time limit; saving after this batch, then requeueing",
                signal.Signals(signum).name,
            )
            signal.raise_signal(signal.SIGTERM)  # Lightning's handler: stop at the end of the batch

        for signum in REQUEUE_SIGNALS:
            self._previous_requeue_handlers[signum] = signal.signal(signum, save_then_requeue)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None
        self._give_back_requeue_signals()

    def _give_back_requeue_signals(self) -> None:
        """USR1 and USR2 to their handlers before this fit; the one that had the signal that stopped it
        is kept for `requeue_if_asked`."""
        for signum, handler in self._previous_requeue_handlers.items():
            signal.signal(signum, handler)
            if received_signal == signum and callable(handler):
                _handed_over[signum] = handler
        self._previous_requeue_handlers = {}

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
        self._give_back_requeue_signals()  # Lightning calls no teardown hook after an exception


def requeue_if_asked() -> None:
    """After a fit stopped by SIGUSR1 or SIGUSR2 in a SLURM job (its checkpoint written), requeue the
    job: submitit's handler if it had the signal (it records the job again, counts a time-out against
    `max_num_timeout`, requeues and exits), else `scontrol requeue` from the first process."""
    if received_signal not in REQUEUE_SIGNALS or not slurm.in_job():
        return
    handler = _handed_over.pop(received_signal, None)
    if handler is not None:
        handler(received_signal, None)
    elif int(os.environ.get("SLURM_PROCID", "0") or 0) == 0:
        slurm.requeue()
