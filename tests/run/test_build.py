"""`rnnlab.run.build`: settings rnnlab reads itself before the Trainer is built."""

import pytest
import torch
from omegaconf import OmegaConf

from rnnlab.errors import UserError
from rnnlab.run.build import set_matmul_precision


def test_matmul_precision_sets_torchs_and_leaves_the_trainer_config():
    before = torch.get_float32_matmul_precision()
    try:
        rest = set_matmul_precision(OmegaConf.create({"max_epochs": 2, "matmul_precision": "high"}))
        assert torch.get_float32_matmul_precision() == "high"
        assert dict(rest) == {"max_epochs": 2}  # the Trainer never sees it
        assert dict(set_matmul_precision(OmegaConf.create({"matmul_precision": None}))) == {}
    finally:
        torch.set_float32_matmul_precision(before)


def test_an_unknown_matmul_precision_is_one_line():
    with pytest.raises(UserError, match="trainer.matmul_precision=fast is unknown; choose one of highest"):
        set_matmul_precision(OmegaConf.create({"matmul_precision": "fast"}))
