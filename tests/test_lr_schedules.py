"""The budget schedule's shapes, and the warmup every schedule can have (`rnnlab.lr_schedules`);
tests/callbacks/test_budget.py lays the schedule over a run's budget."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from rnnlab.errors import UserError
from rnnlab.lr_schedules import BudgetSchedule, check_warmup_steps, decay_factor, warmup_factor
from rnnlab.run.build import build
from tests.project import TINY, compose_train, write_repetitive_corpus


@pytest.mark.parametrize(
    ("decay", "shares"),
    [
        ("cosine", [1.0, 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2, 0.55, 0.1, 0.1]),
        ("linear", [1.0, 0.1 + 0.9 * 0.75, 0.55, 0.1, 0.1]),
        ("constant", [1.0] * 5),
    ],
)
def test_the_decay_goes_from_the_rate_to_its_end_share_over_the_budget(decay, shares):
    fractions = [0.0, 0.25, 0.5, 1.0, 1.5]  # past the end (a last batch over time): the end value
    assert [decay_factor(decay, f, 0.1) for f in fractions] == pytest.approx(shares)


def test_the_warmup_ramps_the_first_steps_linearly():
    assert [warmup_factor(step, 4) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0
    with pytest.raises(UserError, match="warmup_steps=-1"):
        check_warmup_steps(-1)


def test_the_schedule_follows_the_fraction_it_is_given_and_saves_plain_data():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    schedule = BudgetSchedule(optimizer, decay="linear", end_factor=0.0)
    assert optimizer.param_groups[0]["lr"] == 2.0  # nothing spent before it is bound
    spent = [0.25]
    schedule.follow(lambda: spent[0])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.5)
    spent[0] = 0.75
    optimizer.step()
    schedule.step()
    assert schedule.get_last_lr() == pytest.approx([0.5])
    state = schedule.state_dict()
    assert "_fraction" not in state
    torch.save(state, buffer := __import__("io").BytesIO())
    buffer.seek(0)
    again = BudgetSchedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0), "linear", 0.0)
    again.load_state_dict(torch.load(buffer, weights_only=True))
    assert again.base_lrs == [2.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"decay": "cos"}, "scheduler.decay='cos' is unknown"), ({"end_factor": 2}, "end_factor=2 must be")],
)
def test_bad_schedule_settings_are_one_line(kwargs, message):
    with pytest.raises(UserError, match=message):
        BudgetSchedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), **kwargs)


class Rates:
    """The learning rate of every optimiser step, read as the optimiser steps."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def watch(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: self.rates.append(opt.param_groups[0]["lr"])
        )


def fit_with_rates(cfg) -> tuple[list[float], float]:
    import lightning as L

    rates = Rates()

    class Watch(L.Callback):
        def on_train_start(self, trainer, pl_module):
            rates.watch(trainer.optimizers[0])

    datamodule, task, trainer = build(cfg)
    trainer.callbacks.append(Watch())
    trainer.fit(task, datamodule=datamodule)
    return rates.rates, trainer.optimizers[0].param_groups[0]["lr"]


def test_a_warmup_ramps_a_per_epoch_cosine_without_the_cosine_seeing_it(tmp_path):
    corpus = write_repetitive_corpus(tmp_path / "corpus.txt")
    cfg = compose_train(
        *TINY,
        f"data.path={corpus}",
        "scheduler=cosine",
        "scheduler.warmup_steps=5",
        "optimizer.lr=0.01",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=16",  # optimiser steps: 2 batches of 8
        "trainer.limit_val_batches=1",
        "test=false",
        output_dir=str(tmp_path / "run"),
    )
    rates, last = fit_with_rates(cfg)
    assert rates[:6] == pytest.approx([0.002, 0.004, 0.006, 0.008, 0.01, 0.01])
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01), T_max=2
    )
    cosine.optimizer.step()
    cosine.step()
    assert rates[16:] == pytest.approx([cosine.get_last_lr()[0]] * 16)  # the second epoch: the cosine's own
    assert last == pytest.approx(0.0)


def test_warmup_and_a_per_step_schedule_reach_tasks_lightning_optimises(tmp_path):
    """The regression lessons use Lightning's automatic optimisation: its optimizer_step is warmed up,
    and a per-step schedule is stepped by Lightning after every step."""
    cfg = compose_train(
        "experiment=linear_course",
        "scheduler=budget",
        "scheduler.warmup_steps=2",
        "scheduler.decay=linear",
        "scheduler.end_factor=0.0",
        "trainer.max_epochs=4",
        "trainer.max_steps=-1",
        "logger=csv",
        output_dir=str(tmp_path / "run"),
    )
    lr = cfg.optimizer.lr
    rates, last = fit_with_rates(cfg)
    # one batch an epoch: the budget is 4 epochs of 1 step; the warmup halves step 0
    assert rates == pytest.approx([lr * 0.5 * 1.0, lr * 0.75, lr * 0.5, lr * 0.25])
    assert last == pytest.approx(0.0)


def test_adam_takes_its_betas_as_two_settings():
    from hydra.utils import instantiate

    cfg = compose_train("optimizer=adam", "optimizer.beta2=0.99")
    optimizer = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(1))])
    assert type(optimizer) is torch.optim.Adam and optimizer.param_groups[0]["betas"] == (0.9, 0.99)
    with pytest.raises(UserError, match=r"optimizer.beta2=1.0 must be in \[0, 1\)"):
        functools.partial(instantiate(cfg.optimizer), beta2=1.0)([torch.nn.Parameter(torch.zeros(1))])


def test_a_resumed_budget_schedule_takes_new_settings_from_where_the_budget_is():
    from rnnlab.callbacks.new_schedule import follow

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = BudgetSchedule(optimizer, decay="linear", end_factor=0.1)
    schedule.follow(lambda: 0.5)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.55)
    follow(schedule, {"decay": "linear", "end_factor": 0.5})  # resumed with scheduler.end_factor=0.5
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.75)
