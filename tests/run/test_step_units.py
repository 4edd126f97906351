"""Every count a user sets is in optimiser steps; Lightning gets loader batches (`rnnlab.run.step_units`)."""

import logging

import pytest
from omegaconf import OmegaConf

from rnnlab.errors import UserError
from rnnlab.run.step_units import check_checkpoint_steps, loader_batches, trainer_settings_in_batches


def test_whole_numbers_of_batches_convert_silently(caplog):
    with caplog.at_level(logging.INFO):
        assert loader_batches("log_every_n_steps", 16, 8) == 2
        assert loader_batches("log_every_n_steps", 0, 8) == 0  # 0: never, as in Lightning
        assert loader_batches("val_check_interval", 7, 1) == 7
    assert caplog.text == ""


@pytest.mark.parametrize(("steps", "per_batch", "batches"), [(10, 8, 1), (13, 8, 2), (3, 8, 1), (50, 40, 1)])
def test_other_counts_round_to_the_nearest_batch_and_say_so(caplog, steps, per_batch, batches):
    with caplog.at_level(logging.INFO):
        assert loader_batches("limit_train_batches", steps, per_batch) == batches
    assert f"trainer.limit_train_batches={steps} is not a whole number" in caplog.text
    assert f"using {batches * per_batch} steps" in caplog.text


def test_only_counts_are_converted_fractions_and_nulls_stay():
    trainer = OmegaConf.create(
        {"log_every_n_steps": 16, "val_check_interval": 0.5, "limit_train_batches": None, "max_steps": 24}
    )
    assert trainer_settings_in_batches(trainer, 8) == {"log_every_n_steps": 2}


def test_a_step_counted_model_checkpoint_is_refused_when_batches_hold_several_steps():
    callbacks = OmegaConf.create(
        {
            "model_checkpoint": {
                "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
                "every_n_train_steps": 5,
            }
        }
    )
    check_checkpoint_steps(callbacks, 1)  # one step per batch: Lightning's count is right
    with pytest.raises(UserError, match="callbacks.model_checkpoint.every_n_train_steps cannot count"):
        check_checkpoint_steps(callbacks, 8)
