import copy
import functools

import lightning as L
import torch
from torch.nn import functional as F

from rnnlab.contract import StreamInputs
from rnnlab.data.lessons.sine import SineData
from rnnlab.models.recurrent import RecurrentNet
from rnnlab.tasks.sequence_regression import SequenceRegressionTask

QUIET = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)


def test_the_state_carries_across_windows_like_the_lessons_hidden_data_trick():
    torch.manual_seed(0)
    data = SineData(num_steps=10, train_windows=6, val_windows=1, test_windows=1)
    network = RecurrentNet(1, 1, "rnn", 8)
    reference = copy.deepcopy(network)
    adam = functools.partial(torch.optim.Adam, lr=0.01)
    task = SequenceRegressionTask(network, data.task_inputs(), adam, figure_every_n_epochs=0)
    trainer = L.Trainer(max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0, **QUIET)
    trainer.fit(task, datamodule=data)

    # The lesson's loop: one window per step, hidden = hidden.data (carried, detached).
    optimizer = adam(reference.parameters())
    hidden = None
    for x, y in data.train_dataloader():
        prediction, hidden = reference(x, hidden)
        hidden = hidden.detach()
        loss = F.mse_loss(prediction, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for mine, theirs in zip(network.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)


def test_without_carrying_every_window_starts_from_zero():
    torch.manual_seed(0)
    data = SineData(num_steps=10, train_windows=6, val_windows=1, test_windows=1)
    carried = RecurrentNet(1, 1, "rnn", 8)
    fresh = copy.deepcopy(carried)
    sgd = functools.partial(torch.optim.SGD, lr=0.1)
    for network, carry in ((carried, True), (fresh, False)):
        inputs = StreamInputs(num_steps=data.num_steps, carry_state=carry)
        task = SequenceRegressionTask(network, inputs, sgd, figure_every_n_epochs=0)
        L.Trainer(max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0, **QUIET).fit(
            task, datamodule=data
        )
    assert not torch.allclose(carried.head.weight, fresh.head.weight)
