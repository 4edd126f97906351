import functools

import lightning as L
import torch

from rnnlab.callbacks.throughput import Throughput
from rnnlab.data.text.datamodule import LanguageModelData
from rnnlab.models.recurrent import RecurrentNet
from rnnlab.tasks.language_model import LanguageModelTask

QUIET = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu")


def make_task(corpus):
    data = LanguageModelData(path=str(corpus), batch_size=4, num_steps=10)
    data.setup("fit")
    network = RecurrentNet(data.vocab_size, data.vocab_size, "rnn", 8)
    task = LanguageModelTask(
        network, data.task_inputs(), functools.partial(torch.optim.SGD, lr=0.1), sample_length=0
    )
    return data, task


def test_times_the_steps_after_warm_up_and_stamps_the_first_step(repetitive_corpus, tmp_path):
    data, task = make_task(repetitive_corpus)
    stamp = tmp_path / "first_step"
    clock = Throughput(warmup_steps=3, first_step_file=str(stamp))
    trainer = L.Trainer(max_epochs=1, limit_train_batches=10, limit_val_batches=0, callbacks=[clock], **QUIET)
    trainer.fit(task, datamodule=data)
    assert clock._items == 7 * 4 * 10  # tokens of steps 3..9
    assert len(clock.rates) == 1 and clock.last_rate > 0
    assert trainer.callback_metrics["train/tokens_per_s"] == clock.last_rate
    assert float(stamp.read_text()) > 0


def test_validation_inside_an_epoch_pauses_the_clock(repetitive_corpus, monkeypatch):
    """With validation twice per epoch, the seconds spent validating are not training seconds."""
    data, task = make_task(repetitive_corpus)
    slow_validation = task.validation_step

    def validation_step(*args):
        import time

        time.sleep(0.05)
        return slow_validation(*args)

    monkeypatch.setattr(task, "validation_step", validation_step)
    clock = Throughput()
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=10,
        limit_val_batches=4,
        val_check_interval=5,
        num_sanity_val_steps=0,
        callbacks=[clock],
        **QUIET,
    )
    trainer.fit(task, datamodule=data)
    assert clock._items == 10 * 4 * 10  # every step counted, across the validation in between
    assert clock._seconds < 0.2  # 2 validations x 4 batches x 0.05 s = 0.4 s were left out
