"""Train / val / test fractions: checked, and cut into contiguous blocks, the same way for every dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from rnnlab.errors import UserError

Cuttable = TypeVar("Cuttable")  # anything sliceable along its first dimension: a tensor, a list


def check_fractions(splits: Sequence[float], test_may_be_empty: bool = False) -> tuple[float, float, float]:
    """Three fractions summing to 1; with `test_may_be_empty` the test one may be 0 (no test split)."""
    splits = tuple(splits)
    positive = splits[:2] if test_may_be_empty and len(splits) == 3 and splits[2] == 0 else splits
    if len(splits) != 3 or any(part <= 0 for part in positive) or abs(sum(splits) - 1) > 1e-6:
        also = " (test may be 0: no test split)" if test_may_be_empty else ""
        raise UserError(
            f"data.splits={list(splits)} must be three positive fractions (train, val, test) "
            f"summing to 1{also}"
        )
    return splits


def cut(items: Cuttable, fractions: Sequence[float]) -> dict[str, Cuttable]:
    """{"train", "val", "test"} blocks of `items`; train and val rounded down, test takes the rest (and
    with a test fraction of 0, val does: nanoGPT's split, train the first int(0.9 n), val the rest)."""
    n = len(items)
    # The epsilon keeps a product such as 759 * 0.7 from rounding down a whole item below its value.
    n_train = int(n * fractions[0] + 1e-9)
    n_val = int(n * fractions[1] + 1e-9) if fractions[2] else n - n_train
    return {
        "train": items[:n_train],
        "val": items[n_train : n_train + n_val],
        "test": items[n_train + n_val :],
    }
