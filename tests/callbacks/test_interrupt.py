"""In a SLURM job, USR1 or USR2 stop a fit at the end of the batch in hand, save `interrupted.ckpt` there,
and only then requeue the job: by the handler the signal had before (submitit's) or by `scontrol`."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.utilities.exceptions import SIGTERMException

from rnnlab.callbacks import interrupt
from rnnlab.callbacks.interrupt import InterruptCheckpoint
from tests.project import QUIET_TRAINER
from tests.test_slurm import fake_program

STOP_AT_BATCH = 5


class SignalSelf(L.Callback):
    """Sends this process `signum` at the end of training batch `STOP_AT_BATCH` (as scancel -s would)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == STOP_AT_BATCH:
            os.kill(os.getpid(), self.signum)


def fit_until_signalled(tmp_path: Path, signum: int) -> L.Trainer:
    trainer = L.Trainer(
        **QUIET_TRAINER,
        max_steps=40,
        callbacks=[InterruptCheckpoint(str(tmp_path / "checkpoints")), SignalSelf(signum)],
    )
    with pytest.raises(SIGTERMException):
        trainer.fit(BoringModel())
    return trainer


@pytest.fixture
def in_slurm_job(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_PROCID", raising=False)


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGUSR2])
def test_a_requeue_signal_saves_at_the_batch_end_then_hands_over_to_the_handler_it_had(
    tmp_path, in_slurm_job, signum
):
    handed: list[tuple[int, bool]] = []
    saved = tmp_path / "checkpoints" / "interrupted.ckpt"

    def submitits_handler(received, frame):  # requeues and exits, in submitit
        handed.append((received, saved.exists()))

    before = signal.signal(signum, submitits_handler)
    try:
        fit_until_signalled(tmp_path, signum)
        assert handed == []  # not while Lightning stops
        assert signal.getsignal(signum) is submitits_handler  # given back
        checkpoint = torch.load(saved, weights_only=True)
        assert checkpoint["global_step"] == STOP_AT_BATCH + 1  # the batch in hand finished, no other began
        assert interrupt.received_signal == signum
        interrupt.requeue_if_asked()
        assert handed == [(signum, True)]  # once, after the checkpoint
    finally:
        signal.signal(signum, before)


def test_without_a_handler_before_it_the_job_is_requeued_with_scontrol(tmp_path, in_slurm_job, monkeypatch):
    calls = fake_program(tmp_path, "scontrol")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    before = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    try:
        fit_until_signalled(tmp_path / "run", signal.SIGUSR1)
        assert not calls.exists()
        interrupt.requeue_if_asked()
        assert calls.read_text().strip() == "requeue 41"
    finally:
        signal.signal(signal.SIGUSR1, before)


def test_outside_slurm_the_user_signals_keep_their_meaning(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    seen: list[int] = []
    before = signal.signal(signal.SIGUSR2, lambda received, frame: seen.append(received))
    try:
        trainer = L.Trainer(
            **QUIET_TRAINER,
            max_steps=10,
            callbacks=[InterruptCheckpoint(str(tmp_path / "checkpoints")), SignalSelf(signal.SIGUSR2)],
        )
        trainer.fit(BoringModel())  # not stopped
        assert seen == [signal.SIGUSR2] and trainer.global_step == 10
        assert not (tmp_path / "checkpoints").exists()
    finally:
        signal.signal(signal.SIGUSR2, before)
