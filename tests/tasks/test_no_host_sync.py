"""On a GPU, a training step between logging steps never makes the host wait for the device."""

import lightning as L
import pytest
import torch

from rnnlab.run.build import build
from tests.test_configs import compose_train

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")
SETTINGS = [[], ["data.sampling=random", "task.tbptt_steps=7"]]


class SyncsAreErrors(L.Callback):
    """CUDA's sync-debug mode "error" over every training step that Lightning does not log, and over
    the fetching (the gather) of the next batch when that one is not logged either (on a CPU it only
    counts those steps).

    The first steps are left out (the throughput clock synchronises once where it starts)."""

    def __init__(self) -> None:
        self.checked = 0

    @staticmethod
    def _quiet(trainer: L.Trainer, batch: int) -> bool:
        """Batch `batch` (counted from 1) is neither a logging step nor one of the first two."""
        return batch > 2 and batch % trainer.log_every_n_steps != 0  # as `Task.logs_this_step` counts

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._quiet(trainer, trainer.fit_loop.epoch_loop.batch_progress.total.ready):
            if pl_module.device.type == "cuda":
                torch.cuda.set_sync_debug_mode("error")
            self.checked += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        following = trainer.fit_loop.epoch_loop.batch_progress.total.ready + 1
        last = batch_idx + 1 == trainer.num_training_batches  # the epoch's end synchronises (the clock)
        if torch.cuda.is_available() and (last or not self._quiet(trainer, following)):
            torch.cuda.set_sync_debug_mode("default")


def train_checked(tmp_path, corpus, device: str, overrides: list[str]) -> tuple[SyncsAreErrors, object]:
    cfg = compose_train(
        "data=text",
        f"data.path={corpus}",
        "data.batch_size=2",  # the small corpus then holds more than 20 loader batches of the default size
        "model.hidden_size=32",
        f"trainer={device}",
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
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("default")
    return checker, datamodule


@needs_cuda
@pytest.mark.parametrize("overrides", SETTINGS)
def test_training_steps_between_logging_steps_do_not_synchronise(tmp_path, repetitive_corpus, overrides):
    checker, datamodule = train_checked(tmp_path, repetitive_corpus, "gpu", overrides)
    assert checker.checked == 16  # batches 3-20, less the logging steps 10 and 20
    assert datamodule.train_dataloader().dataset.tokens.device.type == "cuda"  # gathered on the device


@pytest.mark.parametrize("overrides", SETTINGS)
def test_the_check_covers_sixteen_steps(tmp_path, repetitive_corpus, overrides):
    """The same run on the CPU: the GPU test above checks as many steps as it says (where no GPU
    runs it, this keeps it from quietly checking none)."""
    checker, _ = train_checked(tmp_path, repetitive_corpus, "cpu", overrides)
    assert checker.checked == 16
