"""The budget (`rnnlab.callbacks.budget`): a schedule laid over `trainer.max_time`, driven by a clock the
test moves by hand (one second per optimiser step), a validation at every stop, and a resume that
keeps what was left of the budget."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import lightning as L
import pytest
import torch

from rnnlab.callbacks.budget import Budget, budget_seconds
from rnnlab.errors import UserError
from rnnlab.lr_schedules import decay_factor
from rnnlab.run.build import build
from tests.project import TINY, compose_train, write_repetitive_corpus

LR, WARMUP, END, BUDGET_S = 0.01, 4, 0.1, 60


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_repetitive_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


class StepRates(L.Callback):
    """The learning rate every optimiser step takes, read as the optimiser steps (warmup included)."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.optimizers[0].register_step_pre_hook(
            lambda optimizer, args, kwargs: self.rates.append(optimizer.param_groups[0]["lr"])
        )


def budget_of(trainer: L.Trainer) -> Budget:
    return next(c for c in trainer.callbacks if isinstance(c, Budget))


def one_second_a_step(trainer: L.Trainer) -> StepRates:
    """The run's clock reads one second per optimiser step taken; the rates it trains with are kept."""
    budget_of(trainer).clock = lambda: float(trainer.global_step)
    recorder = StepRates()
    trainer.callbacks.append(recorder)
    return recorder


def budget_run(corpus: Path, run_dir: Path, *overrides: str, warmup: int = WARMUP):
    cfg = compose_train(
        *TINY,
        f"data.path={corpus}",
        "data.windows_per_batch=1",  # a batch per optimiser step: the clock is read before every step
        "scheduler=budget",
        f"scheduler.warmup_steps={warmup}",
        f"scheduler.end_factor={END}",
        f"optimizer.lr={LR}",
        "trainer.max_time=00:00:01:00",
        "trainer.max_epochs=1000",
        "trainer.limit_val_batches=2",
        "test=false",
        *overrides,
        output_dir=str(run_dir),
    )
    return build(cfg)


def expected_rate(step: int, warmup: int = WARMUP) -> float:
    """What step `step` (0 for the first) should train with at one second a step of a 60 s budget:
    the schedule's rate, capped by the warmup's share of the peak."""
    return LR * min((step + 1) / warmup, decay_factor("cosine", step / BUDGET_S, END))


def test_the_budget_schedule_warms_up_then_reaches_its_end_value_as_the_time_runs_out(tmp_path, corpus):
    datamodule, task, trainer = budget_run(corpus, tmp_path / "run")
    recorder = one_second_a_step(trainer)
    trainer.fit(task, datamodule=datamodule)

    rates = recorder.rates
    assert trainer.global_step == BUDGET_S and len(rates) == BUDGET_S  # stopped by the 60 s, not the epochs
    assert rates[0] == pytest.approx(LR / WARMUP)  # the first step: a quarter of the rate
    assert rates[WARMUP - 1] == pytest.approx(LR * decay_factor("cosine", (WARMUP - 1) / BUDGET_S, END))
    assert rates[BUDGET_S // 2] == pytest.approx(LR * (END + (1 - END) * 0.5))  # half the budget: halfway
    assert rates == pytest.approx([expected_rate(step) for step in range(BUDGET_S)])
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(LR * END)  # the end value at the stop
    # the stop inside the epoch was validated, and that validation saved the best checkpoint
    assert math.isfinite(trainer.callback_metrics["val/ppl"])
    assert Path(trainer.checkpoint_callback.best_model_path).is_file()


def test_a_resumed_run_keeps_the_budget_it_had_left_and_the_schedule_where_it_was(tmp_path, corpus):
    run_dir = tmp_path / "run"
    # the first part stops at step 20 (trainer.max_steps) with 20 of its 60 seconds spent
    datamodule, task, trainer = budget_run(corpus, run_dir, "trainer.max_steps=20")
    one_second_a_step(trainer)
    trainer.fit(task, datamodule=datamodule)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert trainer.global_step == 20
    assert torch.load(last, weights_only=True)["callbacks"]["Budget"] == {"spent_s": 20.0}

    datamodule, task, trainer = budget_run(corpus, run_dir)  # no step limit: the 60 seconds bind
    recorder = one_second_a_step(trainer)
    trainer.fit(task, datamodule=datamodule, ckpt_path=str(last), weights_only=True)
    assert trainer.global_step == BUDGET_S  # 40 more steps: the 40 seconds that were left, not 60
    assert recorder.rates == pytest.approx([expected_rate(step) for step in range(20, BUDGET_S)])
    assert budget_of(trainer).spent_s() == BUDGET_S


def run_metrics(run_dir: Path) -> dict:
    import json

    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("stop", ["trainer.max_steps=41", "trainer.max_time=00:00:00:01"])
def test_a_stop_inside_an_epoch_ends_with_a_validation_and_its_checkpoint(tmp_path, corpus, stop):
    from rnnlab.run.train import train

    run_dir = tmp_path / "run"
    train(
        compose_train(
            *TINY,
            f"data.path={corpus}",
            "model=rnn",
            stop,
            "trainer.max_epochs=1000",
            "test=false",
            output_dir=str(run_dir),
        )
    )
    metrics = run_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["epochs"] < 1000
    assert math.isfinite(metrics["val_ppl"]) and metrics["val_ppl"] > 1
    assert Path(metrics["best_checkpoint"]).is_file()
    if stop == "trainer.max_steps=41":
        assert metrics["steps"] == 41


def validation_steps(run_dir: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [event.step for event in events.Scalars("val/ppl")]


@pytest.mark.parametrize(
    ("cadence", "validations"),
    [
        ("trainer.val_check_interval=end", 1),
        ("trainer.val_check_interval=01:00:00:00", 1),  # every day: only the stop's
        ("trainer.val_check_interval=null", 3),  # Lightning's default: every epoch
    ],
)
def test_validation_only_at_the_end_or_every_so_often_still_validates_at_the_stop(
    tmp_path, corpus, cadence, validations
):
    from rnnlab.run.train import train

    run_dir = tmp_path / "run"
    overrides = ["trainer.max_epochs=3", "trainer.limit_train_batches=16", "trainer.limit_val_batches=2"]
    train(
        compose_train(
            *TINY, f"data.path={corpus}", *overrides, cadence, "test=false", output_dir=str(run_dir)
        )
    )
    metrics = run_metrics(run_dir)
    steps = validation_steps(run_dir)
    assert len(steps) == validations and steps[-1] == metrics["steps"]
    assert math.isfinite(metrics["val_ppl"]) and Path(metrics["best_checkpoint"]).is_file()


@pytest.mark.parametrize(
    ("given", "seconds"),
    [("00:00:02:00", 120.0), ("01:00:00:30", 86430.0), ({"minutes": 5}, 300.0), (timedelta(hours=1), 3600.0)],
)
def test_max_time_is_read_in_lightnings_forms(given, seconds):
    assert budget_seconds(given) == seconds
    assert budget_seconds(None) is None


@pytest.mark.parametrize(
    ("given", "message"),
    [("2 minutes", "is not a duration"), ("00:00:00:00", "must be longer than 0"), ({"mins": 5}, "mins")],
)
def test_a_bad_max_time_is_one_line(given, message):
    with pytest.raises(UserError, match=message):
        budget_seconds(given)


def test_a_budget_that_ends_inside_the_warmup_still_ends_at_the_end_value(tmp_path, corpus):
    datamodule, task, trainer = budget_run(corpus, tmp_path / "run", warmup=100)  # 100 steps, 60 taken
    recorder = one_second_a_step(trainer)
    trainer.fit(task, datamodule=datamodule)
    assert recorder.rates == pytest.approx([expected_rate(step, warmup=100) for step in range(BUDGET_S)])
    assert recorder.rates[0] == pytest.approx(LR / 100)
    assert recorder.rates[-1] == pytest.approx(LR * decay_factor("cosine", 59 / 60, END))  # the cap let go
    assert task.rate_metrics()["lr-Adam"] == pytest.approx(LR * END)  # what the run logs at the stop
