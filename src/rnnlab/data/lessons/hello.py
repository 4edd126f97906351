"""`HelloData`: the course's "hello" -> "ohlol" lesson: one sequence, a class per character."""

from __future__ import annotations

import torch

from rnnlab.contract import ClassInputs, InputKind
from rnnlab.data.lessons.in_memory import InMemoryData, Split
from rnnlab.errors import UserError


class HelloData(InMemoryData):
    """Learn to map `source` to `target`, character by character.

    The alphabet is the sorted characters of both strings ("e", "h", "l", "o" for the lesson), which
    are both the input tokens and the classes. There is one example, so training, validation and
    test all read it: the lesson is about the mechanics of a recurrent network, not generalisation.
    """

    input_kind = InputKind.TOKENS
    hands_over = ClassInputs

    def __init__(self, source: str = "hello", target: str = "ohlol", seed: int = 0) -> None:
        super().__init__(batch_size=1, seed=seed)
        if not source or len(source) != len(target):
            raise UserError(
                f"data.source={source!r} and data.target={target!r} must be non-empty and of the same length "
                "(one target character per input character)"
            )
        self.source, self.target = source, target
        self.alphabet = sorted(set(source) | set(target))

    def load(self) -> dict[str, Split]:
        index = {char: i for i, char in enumerate(self.alphabet)}
        x = torch.tensor([[index[c] for c in self.source]])
        y = torch.tensor([[index[c] for c in self.target]])
        return {split: (x, y) for split in ("train", "val", "test")}

    def network_sizes(self) -> dict[str, int]:
        return {"input_size": len(self.alphabet), "output_size": len(self.alphabet)}

    def task_inputs(self) -> ClassInputs:
        return ClassInputs(tuple(self.alphabet), label_per_step=True)
