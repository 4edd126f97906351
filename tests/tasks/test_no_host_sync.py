"""On a GPU, a training step between logging steps never makes the host wait for the device."""

import lightning as L
import pytest
import torch

from rnnlab.run.build import build
from tests.test_configs import compose_train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")


class SyncsAreErrors(L.Callback):
    """CUDA's sync-debug mode "error" around every training step that Lightning does not log.

    The first steps are left out (the throughput clock synchronises once where it starts)."""

    def __init__(self) -> None:
        self.checked = 0

    def _quiet(self, trainer: L.Trainer) -> bool:
        batch = trainer.fit_loop.epoch_loop.batch_progress.total.ready  # this one, counted from 1
        return batch > 2 and batch % trainer.log_every_n_steps != 0  # as `Task.logs_this_step` counts

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._quiet(trainer):
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if torch.cuda.get_sync_debug_mode():
            torch.cuda.set_sync_debug_mode("default")
            self.checked += 1


@pytest.mark.parametrize("overrides", [[], ["data.sampling=random", "task.tbptt_steps=7"]])
def test_training_steps_between_logging_steps_do_not_synchronise(tmp_path, repetitive_corpus, overrides):
    cfg = compose_train(
        "data=text",
        f"data.path={repetitive_corpus}",
        "model.hidden_size=32",
        "trainer=gpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=20",
        "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=10",
        *overrides,
        output_dir=str(tmp_path),
    )
    datamodule, task, trainer = build(cfg)
    checker = SyncsAreErrors()
    trainer.callbacks.append(checker)
    try:
        trainer.fit(task, datamodule=datamodule)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert checker.checked >= 10
    assert datamodule.train_dataloader().dataset.tokens.device.type == "cuda"  # gathered on the device
