"""Train / val / test fractions: checked, and cut into contiguous blocks, the same way for every dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from rnnlab.errors import UserError

Cuttable = TypeVar("Cuttable")  # anything sliceable along its first dimension: a tensor, a list


def check_fractions(splits: Sequence[float]) -> tuple[float, float, float]:
    splits = tuple(splits)
    if len(splits) != 3 or any(part <= 0 for part in splits) or abs(sum(splits) - 1) > 1e-6:
        raise UserError(
            f"data.splits={list(splits)} must be three positive fractions (train, val, test) summing to 1"
        )
    return splits


def cut(items: Cuttable, fractions: Sequence[float]) -> dict[str, Cuttable]:
    """{"train", "val", "test"} blocks of `items`; train and val rounded down, test takes the rest."""
    n = len(items)
    # The epsilon keeps a product such as 759 * 0.7 from rounding down a whole item below its value.
    n_train = int(n * fractions[0] + 1e-9)
    n_val = int(n * fractions[1] + 1e-9)
    return {
        "train": items[:n_train],
        "val": items[n_train : n_train + n_val],
        "test": items[n_train + n_val :],
    }
