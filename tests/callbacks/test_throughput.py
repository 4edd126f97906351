import functools
from types import SimpleNamespace

import lightning as L
import torch

from rnnlab.callbacks import throughput
from rnnlab.callbacks.throughput import Throughput
from rnnlab.data.text.datamodule import LanguageModelData
from rnnlab.models.recurrent import RecurrentNet
from rnnlab.tasks.language_model import LanguageModelTask

QUIET = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu")


def make_task(corpus):
    data = LanguageModelData(
        path=str(corpus),
        data_dir=str(corpus.parent / "data-dir"),
        batch_size=4,
        num_steps=10,
        windows_per_batch=1,
    )
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
    """With validation twice per epoch, the time spent validating is not training time.

    The clock reads a fake time that advances 1 s per training step and 100 s per validation batch.
    """
    data, task = make_task(repetitive_corpus)
    fake = SimpleNamespace(now=0.0)
    fake.perf_counter = fake.time = lambda: fake.now
    monkeypatch.setattr(throughput, "time", fake)
    train, validate = task.training_step, task.validation_step

    def training_step(*args):
        fake.now += 1
        return train(*args)

    def validation_step(*args):
        fake.now += 100
        return validate(*args)

    monkeypatch.setattr(task, "training_step", training_step)
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
    assert clock._seconds == 10  # the 10 training seconds; the 800 validation seconds left out
    assert clock.last_rate == 400 / 10


def test_a_resumed_epoch_is_timed_from_its_first_batch_here(monkeypatch):
    """A run resumed mid-epoch starts at batch 5: the clock must still start and count."""
    import torch

    fake = SimpleNamespace(now=0.0)
    fake.perf_counter = fake.time = lambda: fake.now
    monkeypatch.setattr(throughput, "time", fake)
    clock = Throughput(warmup_steps=1)
    logged = {}
    trainer = SimpleNamespace(num_training_batches=10, world_size=1, global_step=5)
    module = SimpleNamespace(
        device=torch.device("cpu"),
        throughput_unit="tokens",
        items_in=lambda batch: 7,
        log=lambda name, value, **how: logged.update({name: value}),
    )
    clock.on_train_epoch_start(trainer, module)
    for batch_idx in range(5, 10):
        clock.on_train_batch_start(trainer, module, None, batch_idx)
        fake.now += 1
        clock.on_train_batch_end(trainer, module, None, None, batch_idx)
    clock.on_train_epoch_end(trainer, module)
    assert clock.rates == [4 * 7 / 4] and logged == {"train/tokens_per_s": 7.0}  # batches 6-9 after warm-up
