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


def run_until_it_breaks(corpus, checkpoints, every_step):
    data = LanguageModelData(path=str(corpus), batch_size=4, num_steps=10, windows_per_batch=2)
    data.setup("fit")
    network = RecurrentNet(data.vocab_size, data.vocab_size, "rnn", 8)
    task = BreaksAtStep(
        network, data.task_inputs(), functools.partial(torch.optim.SGD, lr=0.1), sample_length=0
    )
    task.guard.every_step = every_step
    trainer = L.Trainer(
        **QUIET_TRAINER,
        max_epochs=1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        log_every_n_steps=1000,  # the deferred flag is not read at a logging step before the checkpoint
        callbacks=[MidEpochCheckpoint(str(checkpoints), every_n_train_steps=2)],
    )
    with pytest.raises(TrainingDiverged) as stopped:
        trainer.fit(task, datamodule=data)
    return str(stopped.value), trainer


@pytest.mark.parametrize("every_step", [True, False], ids=["cpu-every-step", "accelerator-deferred"])
def test_a_non_finite_loss_stops_training_at_its_step_and_no_checkpoint_holds_its_weights(
    repetitive_corpus, tmp_path, every_step
):
    message, trainer = run_until_it_breaks(repetitive_corpus, tmp_path, every_step)
    assert f"the loss became nan at step {BAD_STEP} " in message
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 4  # steps 1-2 and 3-4 were checkpointed; the batch of steps 5-6 was not
    assert all(torch.isfinite(w).all() for w in saved["state_dict"].values())
    if every_step:  # stopped before step 5's backward: its weights never saw the NaN
        assert trainer.global_step == 4
    else:  # the flag is read when the batch of steps 5-6 wants its checkpoint
        assert trainer.global_step == 6 and "noticed at step 6" in message


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
