import functools

import lightning as L
import torch

from rnnlab.callbacks.throughput import StepClock
from rnnlab.data.text.datamodule import LanguageModelData
from rnnlab.models.recurrent import RecurrentNet
from rnnlab.tasks.language_model import LanguageModelTask


def test_times_the_steps_after_warm_up_and_stamps_the_first_step(repetitive_corpus, tmp_path):
    data = LanguageModelData(path=str(repetitive_corpus), batch_size=4, num_steps=10)
    data.setup("fit")
    task = LanguageModelTask(
        RecurrentNet(data.vocab_size, data.vocab_size, "rnn", 8),
        data.vocab,
        functools.partial(torch.optim.SGD, lr=0.1),
        sample_length=0,
    )
    stamp = tmp_path / "first_step"
    clock = StepClock(warmup_steps=3, first_step_file=str(stamp))
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=10,
        limit_val_batches=0,
        callbacks=[clock],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        accelerator="cpu",
    )
    trainer.fit(task, datamodule=data)
    assert clock.tokens_per_s is not None and clock.tokens_per_s > 0
    assert clock._tokens == 7 * 4 * 10  # steps 3..9 counted
    assert float(stamp.read_text()) > 0
