"""Callbacks that stop a run dead at a chosen point until the test kills it, so that a kill -9 lands at
exactly that point on any machine, however fast or loaded: the run writes a marker file there and
sleeps; the test waits for the marker, then kills. Nothing the run does after the point can then
reach the disk (a poll of the run's files could see a checkpoint only some batches, or an epoch's
end, later).

A run gets one with overrides (`hold_at_mid_epoch_checkpoint`, `hold_as_epoch_starts`); its process
must be able to import `tests` (PYTHONPATH=<repository>). The hold happens once: a resumed run that
passes the point again (its saved overrides still add the callback) goes on, as the marker exists.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import lightning as L

from rnnlab.callbacks.mid_epoch_checkpoint import MidEpochCheckpoint

HOLD_LIMIT_S = 900  # a held run that nobody kills ends itself, so that no test leaves a process behind


def hold(marker: Path) -> None:
    """Write `marker`, then sleep until killed (or, past HOLD_LIMIT_S, end the process with status 70)."""
    marker.write_text(f"{os.getpid()}\n")
    deadline = time.monotonic() + HOLD_LIMIT_S
    while time.monotonic() < deadline:
        time.sleep(0.1)
    os._exit(70)


def hold_until_sigterm(marker: Path) -> None:
    """Write `marker`, then wait until the process gets SIGTERM (as `scancel` sends it), and return: the
    handler that was in place (Lightning's: stop at the end of the batch in hand) has it too, so the
    run then stops as a job told to stop would, one batch later."""
    told = threading.Event()
    previous = signal.getsignal(signal.SIGTERM)

    def note(signum: int, frame) -> None:
        told.set()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, note)
    marker.write_text(f"{os.getpid()}\n")
    if not told.wait(HOLD_LIMIT_S):
        os._exit(70)
    signal.signal(signal.SIGTERM, previous)


class HoldAtMidEpochCheckpoint(L.Callback):
    """Holds at the end of the first training batch, at or past optimiser step `step`, in which the run's
    `MidEpochCheckpoint` saved and that is not the last batch of its epoch: killed there, the run leaves
    a checkpoint from inside an epoch as its newest, whatever the machine's speed."""

    def __init__(self, step: int, marker: str) -> None:
        self.step, self.marker = step, Path(marker)
        self.steps_before = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        self.steps_before = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        # as MidEpochCheckpoint decides (its hook runs before this one: it comes first in the config)
        every = [c.every_n_steps for c in trainer.callbacks if isinstance(c, MidEpochCheckpoint)]
        saved = any(n and trainer.global_step // n > self.steps_before // n for n in every)
        last_of_epoch = batch_idx + 1 >= trainer.num_training_batches
        if saved and not last_of_epoch and trainer.global_step >= self.step and not self.marker.exists():
            hold(self.marker)


class HoldAsEpochStarts(L.Callback):
    """Holds as epoch `epoch` (from 0) starts, after the epoch before it was validated and checkpointed;
    in a search, only in its trial number `trial` (the sweeper sets RNNLAB_OPTUNA_TRIAL)."""

    def __init__(self, epoch: int, marker: str, trial: int | None = None) -> None:
        self.epoch, self.marker, self.trial = epoch, Path(marker), trial

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module) -> None:
        from rnnlab.search.study import ENV_TRIAL

        in_trial = self.trial is None or os.environ.get(ENV_TRIAL) == str(self.trial)
        if trainer.current_epoch == self.epoch and in_trial and not self.marker.exists():
            hold(self.marker)


def hold_at_mid_epoch_checkpoint(step: int, marker: Path) -> list[str]:
    """The overrides that add `HoldAtMidEpochCheckpoint` to a run."""
    return [
        f"+callbacks.hold._target_={__name__}.HoldAtMidEpochCheckpoint",
        f"+callbacks.hold.step={step}",
        f"+callbacks.hold.marker='{marker}'",
    ]


def hold_as_epoch_starts(epoch: int, marker: Path, trial: int | None = None) -> list[str]:
    """The overrides that add `HoldAsEpochStarts` to a run (or to each job of a search)."""
    trial_override = [] if trial is None else [f"+callbacks.hold.trial={trial}"]
    return [
        f"+callbacks.hold._target_={__name__}.HoldAsEpochStarts",
        f"+callbacks.hold.epoch={epoch}",
        f"+callbacks.hold.marker='{marker}'",
        *trial_override,
    ]


class WorkersTogether(L.Callback):
    """Search workers meet before their first trial trains: each writes `<folder>/<pid>` as its first
    fit starts and waits until `count` have, so that all of them run at once (whatever each one's
    start-up took) and each takes a trial before the others can take them all. In the worker whose
    SLURM array task is `stop_task`, its first trial then holds as epoch 1 starts (epoch 0 validated
    and checkpointed) until SIGTERM comes, and stops at the end of the next batch."""

    def __init__(self, folder: str, count: int, stop_task: int | None = None) -> None:
        self.folder, self.count, self.stop_task = Path(folder), count, stop_task
        self.first_trial = False

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        mine = self.folder / str(os.getpid())
        self.first_trial = not mine.exists()
        if not self.first_trial:
            return
        mine.write_text(os.environ.get("SLURM_ARRAY_TASK_ID", ""))
        deadline = time.monotonic() + HOLD_LIMIT_S
        while len(list(self.folder.iterdir())) < self.count:
            if time.monotonic() > deadline:
                os._exit(71)
            time.sleep(0.1)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module) -> None:
        marker = self.folder.with_name(f"{self.folder.name}-stopped-task")
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        stopping = task == str(self.stop_task) and self.first_trial and not marker.exists()
        if trainer.current_epoch == 1 and stopping:
            hold_until_sigterm(marker)


def workers_together(folder: Path, count: int, stop_task: int | None = None) -> list[str]:
    """The overrides that add `WorkersTogether` to each trial of a search's workers."""
    stop = [] if stop_task is None else [f"+callbacks.together.stop_task={stop_task}"]
    return [
        f"+callbacks.together._target_={__name__}.WorkersTogether",
        f"+callbacks.together.folder='{folder}'",
        f"+callbacks.together.count={count}",
        *stop,
    ]
