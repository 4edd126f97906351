"""A resumed run's schedule follows the new settings, or is refused in one line (run/new_schedule.py)."""

import pytest
import torch

from rnnlab.callbacks.new_schedule import follow
from rnnlab.errors import UserError


def optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def stepped(scheduler, epochs):
    for _ in range(epochs):
        scheduler.optimizer.step()
        scheduler.step()
    return scheduler


def test_a_finished_cosine_stretched_to_more_epochs_restarts_from_the_new_curve():
    cosine = stepped(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer(), T_max=2), 2)
    assert cosine.get_last_lr() == pytest.approx([0.0])  # the old schedule ended
    follow(cosine, {"T_max": 4})
    assert cosine.T_max == 4 and cosine.get_last_lr() == pytest.approx([0.5])  # epoch 2 of 4
    assert cosine.optimizer.param_groups[0]["lr"] == pytest.approx(0.5)


def test_unchanged_settings_leave_the_restored_rate_exactly_as_saved():
    cosine = stepped(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer(), T_max=7), 3)
    before = cosine.optimizer.param_groups[0]["lr"]
    follow(cosine, {"T_max": 7})
    assert cosine.optimizer.param_groups[0]["lr"] == before


def test_a_plateau_schedule_takes_new_thresholds():
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer(), patience=2)
    follow(plateau, {"patience": 5, "mode": "min"})
    assert plateau.patience == 5


def test_a_schedule_without_a_closed_form_is_refused_rather_than_misstepped():
    one_cycle = stepped(torch.optim.lr_scheduler.OneCycleLR(optimizer(), max_lr=1.0, total_steps=10), 3)
    follow(one_cycle, {"total_steps": 10})  # the same settings: nothing to follow
    with pytest.raises(UserError, match=r"OneCycleLR\) cannot follow new settings \(total_steps 10 -> 20\)"):
        follow(one_cycle, {"total_steps": 20})
