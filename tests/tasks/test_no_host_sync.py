"""A training step between logging steps never makes the host wait for the device.

On a GPU, CUDA's sync-debug mode turns every synchronisation into an error. Everywhere else (CI has
no GPU), the same runs go on the CPU with the accelerator path forced, and a `TorchFunctionMode`
counts what would make the host wait for tensors that would live on the device: reads (`item`,
`bool`, `tolist`, `numpy`, `float`, `int`, `index`), blocking copies to the host (`cpu`, `to` a CPU
device, `copy_` into a host tensor) and results whose shape depends on the values (`nonzero`,
`masked_select`, `unique`..., indexing with a boolean mask). The tensors followed are the network's
parameters and buffers, the batch, the token ids gathered from (on an accelerator they are on it),
the gradients, and whatever is computed from them. Host-side tensors (Adam's step count, the
sampler's draws) are read freely on any device. A positive control plants one of each in the quiet
steps and checks that the counter counts it: a torch upgrade that blinded it would fail there.

The accelerator path is forced in two places, both by monkeypatching here (no switch in the package):
- the loss reaches `Task.on_before_backward` as a tensor that says it is on `cuda:0`
  (`LossOnAnAccelerator`), so a guard that decides by the loss's device takes its accelerator branch;
- `LanguageModelData._tokens_for` gathers batches from a tensor of ids with `sampler.device` set,
  as it does on an accelerator, instead of from the NumPy array it uses on a CPU.
"""

from __future__ import annotations

import traceback
from collections import Counter

import lightning as L
import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from rnnlab.data.text.datamodule import LanguageModelData
from rnnlab.run.build import build
from rnnlab.tasks.base import Task
from rnnlab.tasks.language_model import LanguageModelTask
from tests.ci_skips import needs_cuda
from tests.project import compose_train, write_repetitive_corpus

SETTINGS = [[], ["data.sampling=random", "task.tbptt_steps=7"]]
# Optimiser steps per loader batch in each setting: 8 windows (the default), of 1 or 2 pieces (10 = 7 + 3).
STEPS_PER_BATCH = {(): 8, ("data.sampling=random", "task.tbptt_steps=7"): 16}
HOST_READS = {"item", "__bool__", "tolist", "cpu", "numpy", "__float__", "__int__", "__index__"}
# Results whose shape depends on the values: the host waits for them to size the output.
DATA_DEPENDENT_SHAPES = {"nonzero", "argwhere", "masked_select", "unique", "unique_consecutive", "bincount"}
ON_DEVICE = "would_be_on_device"  # an attribute this test sets on the tensors it follows
# Lightning converts `prog_bar` values with `.item()` after every batch
# (logger_connector.on_batch_end -> _ResultCollection.metrics -> convert_tensors_to_scalars); the task
# keeps its step metrics off the progress bar for that reason, and this test holds it to that.


def quiet(trainer: L.Trainer, batch: int) -> bool:
    """Batch `batch` (counted from 1) is neither a logging step nor one of the first two (the
    throughput clock synchronises once where it starts)."""
    return batch > 2 and batch % trainer.log_every_n_steps != 0  # as `Task.logs_this_step` counts


def batches_so_far(trainer: L.Trainer) -> int:
    return trainer.fit_loop.epoch_loop.batch_progress.total.ready


class QuietSteps(L.Callback):
    """Calls `begin()` where a run of quiet batches starts and `end()` after its last one: the steps
    and the fetching (the gather) of the next batch when that one is quiet too."""

    def __init__(self) -> None:
        self.checked = 0
        self.inside = False

    def begin(self, pl_module: L.LightningModule, batch) -> None: ...

    def end(self) -> None: ...

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if quiet(trainer, batches_so_far(trainer)):
            if not self.inside:
                self.begin(pl_module, batch)
                self.inside = True
            self.checked += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        last = batch_idx + 1 == trainer.num_training_batches  # the epoch's end synchronises (the clock)
        if self.inside and (last or not quiet(trainer, batches_so_far(trainer) + 1)):
            self.end()
            self.inside = False


class SyncsAreErrors(QuietSteps):
    """CUDA's sync-debug mode "error" over the quiet steps."""

    def begin(self, pl_module, batch) -> None:
        torch.cuda.set_sync_debug_mode("error")

    def end(self) -> None:
        torch.cuda.set_sync_debug_mode("default")


def mark(tensor: torch.Tensor) -> None:
    setattr(tensor, ON_DEVICE, True)


def on_device(value) -> bool:
    return isinstance(value, torch.Tensor) and getattr(value, ON_DEVICE, False)


def mark_all(value) -> None:
    if isinstance(value, torch.Tensor):
        mark(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            mark_all(item)
    elif isinstance(value, dict):
        for item in value.values():
            mark_all(item)


def any_on_device(value) -> bool:
    if isinstance(value, (list, tuple)):
        return any(any_on_device(item) for item in value)
    if isinstance(value, dict):
        return any(any_on_device(item) for item in value.values())
    return on_device(value)


def non_blocking(args: tuple, kwargs: dict) -> bool:
    """A copy's `non_blocking` (the first bool among the arguments of `to` and `copy_`)."""
    return bool(kwargs.get("non_blocking", next((a for a in args if isinstance(a, bool)), False)))


def to_the_host(args: tuple, kwargs: dict) -> bool:
    """Whether `tensor.to(*args, **kwargs)` (`args` past the tensor) copies it to the CPU: to a device
    named "cpu", or to a host tensor's device (`to(other)`). A `torch.device` object is not counted:
    here, where every tensor is on the CPU, one usually comes from a followed tensor's `.device` and
    stands for the accelerator (`clip_grad_norm_` moves the norms to its gradients' device)."""
    target = kwargs.get("device")
    for arg in args:
        if isinstance(arg, torch.Tensor):
            return not on_device(arg)
        if isinstance(arg, (str, torch.device)):
            target = arg
    return isinstance(target, str) and torch.device(target).type == "cpu"


def boolean_mask_on_device(index) -> bool:
    items = index if isinstance(index, (tuple, list)) else (index,)
    return any(on_device(item) and item.dtype == torch.bool for item in items)


def makes_the_host_wait(name: str, args: tuple, kwargs: dict) -> bool:
    """Whether the call `name(*args, **kwargs)` would make the host wait for the device."""
    if not args:
        return False
    if name in HOST_READS or name in DATA_DEPENDENT_SHAPES:
        return on_device(args[0])
    if name == "where" and len(args) == 1 and not kwargs:  # torch.where(condition): nonzero
        return on_device(args[0])
    if name == "to":
        return on_device(args[0]) and to_the_host(args[1:], kwargs) and not non_blocking(args[1:], kwargs)
    if name == "copy_":  # destination.copy_(source)
        source_on_device = len(args) > 1 and on_device(args[1])
        return source_on_device and not on_device(args[0]) and not non_blocking(args[2:], kwargs)
    if name in ("__getitem__", "__setitem__"):
        return len(args) > 1 and boolean_mask_on_device(args[1])
    return False


class HostReadCounter(TorchFunctionMode):
    """Follows which tensors would be on the device (what is computed from one is on it too) and,
    while `counting`, records each call that would make the host wait for one, with where it happened."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()
        self.counting = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if self.counting and makes_the_host_wait(name, args, kwargs):
            frames = traceback.extract_stack(limit=8)[:-1]
            where = " <- ".join(
                f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}" for f in reversed(frames)
            )
            self.reads[f"{name}: {where}"] += 1
        result = func(*args, **kwargs)
        if any_on_device(args) or any_on_device(kwargs):
            mark_all(result)
        return result


class CountsHostReads(QuietSteps):
    """The counter follows the device's tensors over the whole training (a value logged at a logging
    step may be read at a quiet one) and counts over the quiet steps."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = HostReadCounter()
        self.following = False

    def on_train_start(self, trainer, pl_module) -> None:
        for tensor in [*pl_module.parameters(), *pl_module.buffers()]:
            mark(tensor)
        for metric in pl_module.modules():
            for state in getattr(metric, "metric_state", {}).values():
                mark_all(state)
        for parameter in pl_module.parameters():  # gradients come from autograd's engine, past the mode
            parameter.register_post_accumulate_grad_hook(lambda p: mark(p.grad))
        self.counter.__enter__()
        self.following = True

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        mark_all(batch)
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)

    def begin(self, pl_module, batch) -> None:
        self.counter.counting = True

    def end(self) -> None:
        self.counter.counting = False

    def on_train_end(self, trainer, pl_module) -> None:
        self.stop_following()

    def stop_following(self) -> None:
        if self.following:
            self.counter.__exit__(None, None, None)
            self.following = False


class LossOnAnAccelerator(torch.Tensor):
    """A CPU tensor that says it is on an accelerator."""

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", 0)


def force_the_accelerator_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """See the module's docstring."""
    guard = Task.on_before_backward

    def on_before_backward(self, loss: torch.Tensor) -> None:
        forced = loss.as_subclass(LossOnAnAccelerator)  # (`as_subclass` passes the mode by)
        if on_device(loss):
            mark(forced)
        guard(self, forced)

    def tokens_on_the_device(self, sampler, split):
        sampler.device = torch.device("cpu")
        tokens = torch.as_tensor(np.asarray(self.split_tokens[split]), dtype=torch.int32)
        mark(tokens)
        return tokens

    monkeypatch.setattr(Task, "on_before_backward", on_before_backward)
    monkeypatch.setattr(LanguageModelData, "_tokens_for", tokens_on_the_device)


def train_checked(tmp_path, corpus, device: str, overrides: list[str], checker: QuietSteps):
    cfg = compose_train(
        "data=text",
        f"data.path={corpus}",
        "data.batch_size=2",  # the small corpus then holds more than 20 loader batches of the default size
        "data.num_steps=10",
        "model.hidden_size=32",
        f"trainer={device}",
        "trainer.max_epochs=1",
        # counts in optimiser steps: 20 loader batches, a logging step every 10 of them
        f"trainer.limit_train_batches={20 * STEPS_PER_BATCH[tuple(overrides)]}",
        "trainer.limit_val_batches=1",
        f"trainer.log_every_n_steps={10 * STEPS_PER_BATCH[tuple(overrides)]}",
        *overrides,
        output_dir=str(tmp_path),
    )
    datamodule, task, trainer = build(cfg)
    trainer.callbacks.append(checker)
    try:
        trainer.fit(task, datamodule=datamodule)
    finally:
        if checker.inside:
            checker.end()
        if isinstance(checker, CountsHostReads):
            checker.stop_following()
    return datamodule


@needs_cuda
@pytest.mark.parametrize("overrides", SETTINGS)
def test_training_steps_between_logging_steps_do_not_synchronise(tmp_path, repetitive_corpus, overrides):
    checker = SyncsAreErrors()
    datamodule = train_checked(tmp_path, repetitive_corpus, "gpu", overrides, checker)
    assert checker.checked == 16  # batches 3-20, less the logging steps 10 and 20
    assert datamodule.train_dataloader().dataset.tokens.device.type == "cuda"  # gathered on the device


def device_reads(checker: CountsHostReads, allowed: tuple[str, ...]) -> dict[str, int]:
    return {where: n for where, n in checker.counter.reads.items() if not any(a in where for a in allowed)}


@pytest.fixture(scope="module")
def counted(tmp_path_factory) -> dict[tuple[str, ...], tuple[CountsHostReads, bool]]:
    """Each setting's run on the CPU with the accelerator path forced, its host reads counted; run once
    for the tests below (kept on one pytest-xdist worker by their group). Also whether the batches
    were gathered from a tensor, as on an accelerator."""
    corpus = write_repetitive_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")
    runs = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        force_the_accelerator_path(monkeypatch)
        for overrides in SETTINGS:
            checker = CountsHostReads()
            datamodule = train_checked(tmp_path_factory.mktemp("run"), corpus, "cpu", overrides, checker)
            gathered_from_a_tensor = isinstance(datamodule.train_dataloader().dataset.tokens, torch.Tensor)
            runs[tuple(overrides)] = checker, gathered_from_a_tensor
    return runs


@pytest.mark.xdist_group("host-reads")
@pytest.mark.parametrize("overrides", SETTINGS)
def test_on_the_cpu_training_steps_between_logging_steps_read_nothing_from_the_device(counted, overrides):
    checker, gathered_from_a_tensor = counted[tuple(overrides)]
    assert checker.checked == 16  # batches 3-20, less the logging steps 10 and 20
    assert gathered_from_a_tensor  # the accelerator's gather
    reads = device_reads(checker, allowed=())  # Lightning's progress-bar conversion included
    assert not reads, "host reads of device tensors in quiet steps:\n" + "\n".join(
        f"{n} x {where}" for where, n in reads.items()
    )


# -- the positive control: what the counter must count, planted in every optimiser step -----------------
def plant_item(logits: torch.Tensor) -> None:
    logits.sum().item()


def plant_cpu(logits: torch.Tensor) -> None:
    logits.cpu()


def plant_to_cpu(logits: torch.Tensor) -> None:
    logits.to("cpu")


def plant_copy_to_host(logits: torch.Tensor) -> None:
    torch.empty(logits.shape).copy_(logits)


def plant_nonzero(logits: torch.Tensor) -> None:
    (logits > 0).nonzero()


def plant_mask_index(logits: torch.Tensor) -> None:
    logits[logits > 0]


PLANTED = {
    f.__name__: f
    for f in (plant_item, plant_cpu, plant_to_cpu, plant_copy_to_host, plant_nonzero, plant_mask_index)
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> CountsHostReads:
    """The first setting's run with every plant called on the logits of every optimiser step."""
    corpus = write_repetitive_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")
    loss = LanguageModelTask.loss

    def loss_with_planted_waits(self, logits, targets):
        for plant in PLANTED.values():
            plant(logits.detach())
        return loss(self, logits, targets)

    with pytest.MonkeyPatch.context() as monkeypatch:
        force_the_accelerator_path(monkeypatch)
        monkeypatch.setattr(LanguageModelTask, "loss", loss_with_planted_waits)
        checker = CountsHostReads()
        train_checked(tmp_path_factory.mktemp("run"), corpus, "cpu", SETTINGS[0], checker)
    return checker


@pytest.mark.xdist_group("host-reads")
@pytest.mark.parametrize("plant", PLANTED)
def test_the_counter_counts_a_planted_wait_at_every_quiet_step(planted, plant):
    counted = sum(n for where, n in planted.counter.reads.items() if f" {plant}" in where)
    assert planted.checked == 16
    assert counted == planted.checked * STEPS_PER_BATCH[()], (
        f"{plant}: {counted} counted; the counter is blind to it:\n" + "\n".join(planted.counter.reads)
    )
