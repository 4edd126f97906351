import copy
import functools
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.nn import functional as F

from rnnlab.callbacks.throughput import Throughput
from rnnlab.data.streams import TokenWindows
from rnnlab.data.text.datamodule import WINDOWS_PER_BATCH, LanguageModelData
from rnnlab.errors import UserError
from rnnlab.generation import generate
from rnnlab.models.recurrent import RecurrentNet
from rnnlab.tasks.language_model import LanguageModelTask
from rnnlab.tasks.sequence import detach
from tests.project import QUIET_TRAINER

QUIET = QUIET_TRAINER


def make_data(corpus: Path, **kwargs) -> LanguageModelData:
    """The corpus's datamodule, its token cache in a folder next to it (the test's own); one window
    per loader batch unless asked, so that a bare Trainer's batch limits count windows."""
    kwargs.setdefault("windows_per_batch", 1)
    data = LanguageModelData(path=str(corpus), data_dir=str(corpus.parent / "data-dir"), **kwargs)
    data.setup("fit")
    return data


def make_task(network, data, optimizer, **kwargs) -> LanguageModelTask:
    kwargs.setdefault("sample_length", 0)
    return LanguageModelTask(network, data.task_inputs(), optimizer, **kwargs)


@pytest.mark.parametrize(
    ("tbptt_steps", "pieces", "penalties"),
    [(5, 3, {}), (None, 1, {}), (5, 3, {"activation_reg": 1.0, "temporal_activation_reg": 2.0})],
)
def test_truncated_bptt_equals_a_hand_written_loop(repetitive_corpus, tbptt_steps, pieces, penalties):
    torch.manual_seed(0)
    data = make_data(repetitive_corpus, batch_size=4, num_steps=12, seed=7)
    network = RecurrentNet(data.vocab_size, data.vocab_size, "lstm", 16, **penalties)
    reference = copy.deepcopy(network)
    sgd = functools.partial(torch.optim.SGD, lr=0.5)
    task = make_task(network, data, sgd, tbptt_steps=tbptt_steps, gradient_clip_val=0.1)
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=3, limit_val_batches=0, num_sanity_val_steps=0, **QUIET
    )
    trainer.fit(task, datamodule=data)
    assert trainer.global_step == 3 * pieces  # one optimiser step per piece of 12 steps: 5 + 5 + 2

    # The same three batches, by hand: pieces of k steps, state carried (detached) within and across batches.
    optimizer = sgd(reference.parameters())
    sampler = data._train_sampler()
    sampler.set_epoch(0)
    windows = TokenWindows(data.split_tokens["train"])
    state = None
    for _, window in zip(range(3), sampler, strict=False):
        x, y = windows[window]
        k = tbptt_steps or x.size(1)
        for xs, ys in zip(x.split(k, dim=1), y.split(k, dim=1), strict=True):
            logits, state, penalty = reference.forward_with_penalty(xs, state)
            loss = F.cross_entropy(logits.flatten(0, 1), ys.flatten())
            if penalties:  # AR/TAR: the task optimises the loss plus the network's penalty
                loss = loss + penalty
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.1)
            optimizer.step()
            state = detach(state)
    for trained, by_hand in zip(network.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(trained, by_hand)


class ThroughLightningBackward(LanguageModelTask):
    """The task as it trained before the plain backward path: Lightning's manual_backward and clipping."""

    def on_train_start(self) -> None:
        super().on_train_start()
        self.plain_step = False


def optimiser_step_losses(task, data, windows: int, batches: int) -> tuple[list[float], list[torch.Tensor]]:
    """The loss of every optimiser step of a short fit, and the weights it ends with."""
    losses = []
    step = task.optimise

    def recording(loss):
        losses.append(loss.item())
        step(loss)

    task.optimise = recording
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=batches, limit_val_batches=0, num_sanity_val_steps=0, **QUIET
    )
    trainer.fit(task, datamodule=data)
    assert len(losses) == windows * (2 if task.tbptt_steps else 1)
    return losses, [p.detach().clone() for p in task.network.parameters()]


@pytest.mark.parametrize("sampling", ["sequential", "random"])
@pytest.mark.parametrize("tbptt_steps", [None, 6])
def test_several_windows_per_batch_and_the_plain_step_leave_the_loss_trajectory_unchanged(
    repetitive_corpus, sampling, tbptt_steps
):
    """The default (`data.windows_per_batch` windows per loader batch, plain PyTorch backward and
    clipping) optimises exactly what one window per batch through Lightning's manual_backward did: the
    same losses, step by step."""
    default = WINDOWS_PER_BATCH
    assert default > 1
    runs = []
    for windows_per_batch, task_class in ((1, ThroughLightningBackward), (default, LanguageModelTask)):
        torch.manual_seed(0)
        data = make_data(
            repetitive_corpus,
            batch_size=4,
            num_steps=12,
            seed=7,
            sampling=sampling,
            windows_per_batch=windows_per_batch,
        )
        network = RecurrentNet(data.vocab_size, data.vocab_size, "lstm", 16, num_layers=2, dropout=0.3)
        sgd = functools.partial(torch.optim.SGD, lr=0.5)
        task = task_class(
            network, data.task_inputs(), sgd, tbptt_steps=tbptt_steps, gradient_clip_val=0.1, sample_length=0
        )
        windows = 2 * default
        runs.append(optimiser_step_losses(task, data, windows, batches=windows // windows_per_batch))
    (before, weights_before), (now, weights_now) = runs
    assert now == before  # every step's loss, bit for bit
    assert all(torch.equal(a, b) for a, b in zip(weights_before, weights_now, strict=True))


def test_max_steps_stops_inside_a_batch_of_several_windows(repetitive_corpus):
    data = make_data(repetitive_corpus, batch_size=4, num_steps=12, windows_per_batch=4)
    network = RecurrentNet(data.vocab_size, data.vocab_size, "gru", 8)
    task = make_task(network, data, functools.partial(torch.optim.SGD, lr=0.1))
    trainer = L.Trainer(max_steps=6, limit_val_batches=0, num_sanity_val_steps=0, **QUIET)
    trainer.fit(task, datamodule=data)
    assert trainer.global_step == 6  # not 8: the second batch of 4 windows stops after its second


def test_learns_a_repetitive_corpus_and_regenerates_it(repetitive_corpus):
    torch.manual_seed(0)
    data = make_data(repetitive_corpus, batch_size=8, num_steps=20, seed=0)
    task = make_task(
        RecurrentNet(data.vocab_size, data.vocab_size, "lstm", 64),
        data,
        functools.partial(torch.optim.Adam, lr=0.02),
    )
    clock = Throughput()
    trainer = L.Trainer(max_epochs=8, num_sanity_val_steps=0, callbacks=[clock], **QUIET)
    trainer.fit(task, datamodule=data)
    assert trainer.callback_metrics["val/ppl"] < 1.2
    trainer.test(task, datamodule=data, verbose=False)
    assert trainer.callback_metrics["test/ppl"] < 1.2
    assert len(clock.rates) == 8 and all(rate > 0 for rate in clock.rates)
    text = generate(task.network, data.vocab, "the quick", 60)
    assert text == "the quick brown fox jumps over the lazy dog the quick brown fox jumps"


def test_tbptt_longer_than_the_sequence_is_refused(repetitive_corpus):
    data = make_data(repetitive_corpus, batch_size=4, num_steps=10)
    network = RecurrentNet(data.vocab_size, data.vocab_size, "rnn", 8)
    with pytest.raises(UserError, match="task.tbptt_steps=11 is longer than a training sequence"):
        make_task(network, data, torch.optim.SGD, tbptt_steps=11)


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"tbptt_steps": 0}, "at least 1"), ({"gradient_clip_val": -1}, "positive")]
)
def test_bad_task_settings_are_refused(repetitive_corpus, kwargs, message):
    data = make_data(repetitive_corpus, batch_size=4, num_steps=10)
    with pytest.raises(UserError, match=message):
        make_task(RecurrentNet(data.vocab_size, data.vocab_size, "rnn", 8), data, torch.optim.SGD, **kwargs)


def test_a_bidirectional_network_is_flagged_as_no_language_model(repetitive_corpus):
    data = make_data(repetitive_corpus, batch_size=4, num_steps=12)
    network = RecurrentNet(data.vocab_size, data.vocab_size, "lstm", 8, bidirectional=True)
    with pytest.warns(UserWarning, match="cannot be a left-to-right language model"):
        make_task(network, data, torch.optim.SGD)


@pytest.mark.parametrize(("tokens", "reports_bits"), [("char", True), ("word", False)])
def test_char_models_also_report_bits_per_character(repetitive_corpus, tokens, reports_bits):
    data = make_data(repetitive_corpus, batch_size=4, num_steps=10, tokens=tokens)
    task = make_task(RecurrentNet(data.vocab_size, data.vocab_size, "rnn", 8), data, torch.optim.SGD)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=3, num_sanity_val_steps=0, **QUIET)
    trainer.fit(task, datamodule=data)
    logged = trainer.callback_metrics
    assert ("val/bpc" in logged) is reports_bits and ("train/bpc" in logged) is reports_bits
    if reports_bits:
        assert logged["val/bpc"].item() == pytest.approx(logged["val/loss"].item() / math.log(2))


def test_a_word_model_with_tied_weights_beats_word_frequencies_on_the_time_machine(tmp_path):
    torch.manual_seed(0)
    data = LanguageModelData(
        data_dir=str(tmp_path),
        filename="timemachine.txt",
        sha1="090b5e7e70c295757f55df93cb0a180b9691891a",
        tokens="word",
        min_freq=3,
        batch_size=16,
        num_steps=20,
        windows_per_batch=4,
    )
    data.prepare_data()
    data.setup("fit")
    network = RecurrentNet(
        data.vocab_size, data.vocab_size, "lstm", 64, embedding_dim=32, tie_weights=True, dropout=0.2
    )
    task = make_task(network, data, functools.partial(torch.optim.Adam, lr=0.01))
    trainer = L.Trainer(max_epochs=3, num_sanity_val_steps=0, **QUIET)
    trainer.fit(task, datamodule=data)
    # The perplexity per word of a unigram model (each word's training frequency, smoothed by one)
    counts = torch.bincount(
        torch.as_tensor(data.split_tokens["train"].astype("int64")), minlength=data.vocab_size
    )
    unigram = (counts + 1) / (counts + 1).sum()
    val = torch.as_tensor(data.split_tokens["val"].astype("int64"))
    unigram_ppl = unigram[val].log().mean().neg().exp().item()
    ppl = trainer.callback_metrics["val/ppl"].item()
    assert ppl == pytest.approx(trainer.callback_metrics["val/loss"].exp().item(), rel=1e-5)
    assert ppl < 0.9 * unigram_ppl, (ppl, unigram_ppl)


def test_a_callback_on_the_optimiser_step_gets_lightnings_path_and_sees_every_step(repetitive_corpus):
    class CountsSteps(L.Callback):
        calls = 0

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            CountsSteps.calls += 1

    runs = {}
    for callbacks in ([], [CountsSteps()]):
        data = make_data(repetitive_corpus, batch_size=4, num_steps=12, windows_per_batch=3)
        task = make_task(RecurrentNet(data.vocab_size, data.vocab_size, "rnn", 8), data, torch.optim.SGD)
        trainer = L.Trainer(
            max_epochs=1, limit_train_batches=2, limit_val_batches=0, callbacks=callbacks, **QUIET
        )
        trainer.fit(task, datamodule=data)
        runs[bool(callbacks)] = (task.plain_step, trainer.global_step)
    assert runs == {False: (True, 6), True: (False, 6)}  # both count 2 batches x 3 windows
    assert CountsSteps.calls == 6


@pytest.mark.parametrize("max_steps", [7, 8, 10])
def test_max_steps_stops_at_exactly_that_step_inside_truncated_bptt_pieces(repetitive_corpus, max_steps):
    """A batch of 2 windows x 3 pieces holds 6 optimiser steps; max_steps may fall inside a window."""
    data = make_data(repetitive_corpus, batch_size=4, num_steps=12, windows_per_batch=2)
    task = make_task(
        RecurrentNet(data.vocab_size, data.vocab_size, "gru", 8), data, torch.optim.SGD, tbptt_steps=5
    )
    assert task.steps_per_batch == 6
    trainer = L.Trainer(max_steps=max_steps, limit_val_batches=0, num_sanity_val_steps=0, **QUIET)
    trainer.fit(task, datamodule=data)
    assert trainer.global_step == max_steps


def test_windowed_validation_scores_fresh_windows_as_a_hand_written_loop_does(repetitive_corpus):
    """data.eval_mode=windowed: each window of eval_num_steps from a zero state, every token once."""
    torch.manual_seed(0)
    data = make_data(repetitive_corpus, batch_size=4, num_steps=12, eval_mode="windowed", eval_num_steps=16)
    network = RecurrentNet(data.vocab_size, data.vocab_size, "gru", 8)
    task = make_task(network, data, torch.optim.SGD)
    trainer = L.Trainer(**QUIET)
    (result,) = trainer.validate(task, datamodule=data, verbose=False)
    ids = torch.as_tensor(data.split_tokens["val"].astype("int64"))
    losses = []
    network.eval()
    with torch.no_grad():
        for start in range(0, len(ids) - 1, 16):
            window = ids[start : min(start + 17, len(ids))]
            logits, _ = network(window[None, :-1])  # no state: a fresh start
            losses.append(F.cross_entropy(logits[0], window[1:], reduction="sum"))
    expected = torch.stack(losses).sum() / (len(ids) - 1)
    assert result["val/loss"] == pytest.approx(expected.item(), rel=1e-5)
    (stream,) = L.Trainer(**QUIET).validate(
        task, datamodule=make_data(repetitive_corpus, batch_size=4, num_steps=12), verbose=False
    )
    assert stream["val/loss"] != pytest.approx(result["val/loss"], rel=1e-6)  # the modes differ
