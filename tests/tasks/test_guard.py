"""The non-finite guard: the run stops naming the first bad step, and no checkpoint holds bad weights,
on the CPU's every-step path and on the accelerator's deferred one (forced here on the CPU)."""

import functools

import lightning as L
import pytest
import torch

from rnnlab.callbacks.mid_epoch_checkpoint import MidEpochCheckpoint
from rnnlab.data.text.datamodule import LanguageModelData
from rnnlab.models.recurrent import RecurrentNet
from rnnlab.tasks.guard import NonFiniteGuard, TrainingDiverged
from rnnlab.tasks.language_model import LanguageModelTask
from tests.project import QUIET_TRAINER

BAD_STEP = 5


class BreaksAtStep(LanguageModelTask):
    """The loss of optimiser step BAD_STEP (and every later one) is NaN."""

    def loss(self, outputs, targets):
        loss = super().loss(outputs, targets)
        return loss * float("nan") if self.training and self.global_step + 1 >= BAD_STEP else loss


def run_until_it_breaks(corpus, every_step, callbacks=(), **trainer_settings):
    """Train on batches of 2 optimiser steps each until the NaN of step BAD_STEP stops the run; returns
    the error's text and the trainer. No validation, no logging step and no checkpoint unless asked."""
    data = LanguageModelData(path=str(corpus), batch_size=4, num_steps=10, windows_per_batch=2)
    data.setup("fit")
    network = RecurrentNet(data.vocab_size, data.vocab_size, "rnn", 8)
    task = BreaksAtStep(
        network, data.task_inputs(), functools.partial(torch.optim.SGD, lr=0.1), sample_length=0
    )
    task.guard.every_step = every_step
    settings = dict(
        max_epochs=1,
        limit_train_batches=TRAIN_BATCHES,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        log_every_n_steps=1000,  # no logging step unless a case asks for one
    )
    trainer = L.Trainer(**{**QUIET_TRAINER, **settings, **trainer_settings}, callbacks=list(callbacks))
    with pytest.raises(TrainingDiverged) as stopped:
        trainer.fit(task, datamodule=data)
    return str(stopped.value), trainer


TRAIN_BATCHES = 10  # 20 optimiser steps: the NaN of step 5 comes in batch 3 (steps 5-6)


@pytest.mark.parametrize("every_step", [True, False], ids=["cpu-every-step", "accelerator-deferred"])
def test_a_non_finite_loss_stops_training_at_its_step_and_no_checkpoint_holds_its_weights(
    repetitive_corpus, tmp_path, every_step
):
    checkpoints = MidEpochCheckpoint(str(tmp_path), every_n_train_steps=2)
    message, trainer = run_until_it_breaks(repetitive_corpus, every_step, callbacks=[checkpoints])
    assert f"the loss became nan at step {BAD_STEP} " in message
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 4  # steps 1-2 and 3-4 were checkpointed; the batch of steps 5-6 was not
    assert all(torch.isfinite(w).all() for w in saved["state_dict"].values())
    if every_step:  # stopped before step 5's backward: its weights never saw the NaN
        assert trainer.global_step == 4
    else:  # the flag is read when the batch of steps 5-6 wants its checkpoint
        assert trainer.global_step == 6 and "noticed at step 6" in message


# On an accelerator the flag is read at four points; each case below has the NaN caught at one of them,
# with none of the others coming first (the case before a checkpoint is the test above). Removing the
# read a case names makes that case fail: the NaN is then caught later (at train end), or never.
DEFERRED_READS = {
    # Lightning writes step metrics after loader batch 4 (steps 7-8): the task reads the flag there
    "a logging step, no checkpoint": (dict(log_every_n_steps=4), 8),
    # a validation after loader batch 4, no checkpoint and no logging step
    "validation start": (dict(val_check_interval=4, limit_val_batches=1), 8),
    # nothing on the way: no checkpoint, no validation, no logging step; the flag is read as training ends
    "train end, checkpointing off": ({}, 2 * TRAIN_BATCHES),
}


@pytest.mark.parametrize("where", DEFERRED_READS)
def test_the_deferred_flag_is_read_where_it_must_be(repetitive_corpus, tmp_path, where):
    settings, noticed_at = DEFERRED_READS[where]
    message, trainer = run_until_it_breaks(
        repetitive_corpus, every_step=False, default_root_dir=str(tmp_path), **settings
    )
    assert f"the loss became nan at step {BAD_STEP} " in message
    assert trainer.global_step == noticed_at and f"noticed at step {noticed_at})" in message, message
    assert not list(tmp_path.rglob("*.ckpt"))


def test_the_deferred_flag_keeps_the_first_bad_step():
    guard = NonFiniteGuard()
    guard.every_step = False
    for step, value in [(1, 1.0), (2, float("inf")), (3, float("nan")), (4, 2.0)]:
        guard.observe(torch.tensor(value), step)
    with pytest.raises(TrainingDiverged, match="the loss became inf at step 2"):
        guard.check()


def test_finite_losses_pass_on_both_paths():
    for every_step in (True, False):
        guard = NonFiniteGuard()
        guard.every_step = every_step
        for step in range(1, 4):
            guard.observe(torch.tensor(0.5), step)
        guard.check()  # nothing raised
