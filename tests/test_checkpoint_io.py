from pathlib import Path

import pytest
import torch

import rnnlab.checkpoint_io as checkpoint_io
from rnnlab.checkpoint_io import AtomicCheckpointIO


def test_a_crash_while_saving_leaves_the_previous_checkpoint_whole(tmp_path: Path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1, "weights": torch.arange(1000)}, path)

    def crash_half_way(obj, file):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_io.torch, "save", crash_half_way)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": 2, "weights": torch.zeros(1000)}, path)

    kept = torch.load(path, weights_only=True)
    assert kept["step"] == 1 and torch.equal(kept["weights"], torch.arange(1000))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind
