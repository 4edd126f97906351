"""`SyntheticSequenceData`: random feature sequences with class labels (the parameter-update walkthrough)."""

from __future__ import annotations

import torch

from rnnlab.contract import ClassInputs, InputKind
from rnnlab.data.lessons.in_memory import InMemoryData, Split
from rnnlab.errors import UserError


class SyntheticSequenceData(InMemoryData):
    """x ~ N(0, 1) of shape [seq_len, num_features]; labels uniform over `num_classes`.

    The walkthrough's labels are random, so nothing can be learned: chance accuracy is the expected
    result. `signal=true` plants a rule instead (the class whose feature column has the largest sum
    over the steps), so that learning can be tested on the same shapes.
    """

    input_kind = InputKind.SEQUENCES
    hands_over = ClassInputs

    def __init__(
        self,
        num_samples: int = 100,
        val_samples: int = 100,
        test_samples: int = 100,
        num_features: int = 10,
        seq_len: int = 1,
        num_classes: int = 2,
        signal: bool = False,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, seed)
        for name in ("num_samples", "val_samples", "test_samples", "num_features", "seq_len"):
            if locals()[name] < 1:
                raise UserError(f"data.{name}={locals()[name]} must be at least 1")
        if num_classes < 2:
            raise UserError(f"data.num_classes={num_classes} must be at least 2")
        if signal and num_features < num_classes:
            raise UserError(
                f"data.signal=true reads the class off the first num_classes features: "
                f"data.num_features={num_features} must be at least data.num_classes={num_classes}"
            )
        self.sizes = {"train": num_samples, "val": val_samples, "test": test_samples}
        self.num_features, self.seq_len, self.num_classes, self.signal = (
            num_features,
            seq_len,
            num_classes,
            signal,
        )

    def load(self) -> dict[str, Split]:
        generator = torch.Generator().manual_seed(self.seed)
        splits = {}
        for split, n in self.sizes.items():
            x = torch.randn(n, self.seq_len, self.num_features, generator=generator)
            if self.signal:
                y = x[:, :, : self.num_classes].sum(dim=1).argmax(dim=1)
            else:
                y = torch.randint(self.num_classes, (n,), generator=generator)
            splits[split] = (x, y)
        return splits

    def network_sizes(self) -> dict[str, int]:
        return {"input_size": self.num_features, "output_size": self.num_classes}

    def task_inputs(self) -> ClassInputs:
        return ClassInputs(tuple(str(k) for k in range(self.num_classes)))
