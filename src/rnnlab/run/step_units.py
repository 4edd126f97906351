"""One step unit: every count a user sets or sees is in optimiser steps.

A language model's loader batch holds several optimiser steps (`data.windows_per_batch` windows,
each cut into `task.tbptt_steps` pieces), so that Lightning's cost per batch is paid once per
several steps. Lightning counts some settings in loader batches, though: `log_every_n_steps`,
`val_check_interval` (as a count) and `limit_train_batches` (as a count). rnnlab takes them in
optimiser steps and hands Lightning the number of loader batches they make. A count that is not a
whole number of batches is rounded to the nearest (at least one), with one line saying so.

The rest already counts optimiser steps: `max_steps` (the task stops inside a batch at exactly that
step), `callbacks.mid_epoch_checkpoint.every_n_train_steps`, `global_step`, TensorBoard's x-axis
(`Task.log_at_step`) and the progress count (`rnnlab.callbacks.progress`). An epoch's last batch may
hold fewer windows than the others, so a batch-counted setting stays a whole number of batches, not
always an exact multiple of its steps, after the first epoch.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from rnnlab.errors import UserError

log = logging.getLogger(__name__)

# Trainer settings given in optimiser steps that Lightning counts in loader batches (an int is a
# count; a float is a fraction of an epoch and needs no conversion).
COUNTED_IN_BATCHES = ("log_every_n_steps", "val_check_interval", "limit_train_batches")


def loader_batches(setting: str, steps: int, per_batch: int) -> int:
    """`steps` optimiser steps as loader batches of `per_batch` steps; rounded, with a line, if need be."""
    if steps == 0 or per_batch == 1:
        return steps
    batches = max(1, round(steps / per_batch))
    if batches * per_batch != steps:
        log.info(
            "trainer.%s=%d is not a whole number of training batches (%d optimiser steps each: "
            "data.windows_per_batch x truncated-BPTT pieces); using %d steps",
            setting,
            steps,
            per_batch,
            batches * per_batch,
        )
    return batches


def trainer_settings_in_batches(trainer: DictConfig, per_batch: int) -> dict[str, Any]:
    """The Trainer arguments of `COUNTED_IN_BATCHES` that are step counts, as loader batches."""
    converted = {}
    for setting in COUNTED_IN_BATCHES:
        value = trainer.get(setting)
        if isinstance(value, int) and not isinstance(value, bool):
            converted[setting] = loader_batches(setting, value, per_batch)
    return converted


def check_checkpoint_steps(callbacks: DictConfig | None, per_batch: int) -> None:
    """Lightning's `ModelCheckpoint(every_n_train_steps=n)` saves only when the step count after a
    batch is a multiple of n, which batches of several steps rarely hit: refused, pointing at the
    callback that counts steps by crossing."""
    for name, callback in (callbacks or {}).items():
        target = callback.get("_target_", "") if callback else ""
        if per_batch > 1 and target.endswith(".ModelCheckpoint") and callback.get("every_n_train_steps"):
            raise UserError(
                f"callbacks.{name}.every_n_train_steps cannot count optimiser steps when a training batch "
                f"holds {per_batch} of them; use callbacks.mid_epoch_checkpoint.every_n_train_steps "
                "(last.ckpt every n steps), or data.windows_per_batch=1"
            )
