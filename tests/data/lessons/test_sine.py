import math

import pytest
import torch

from rnnlab.data.lessons.sine import SineData
from rnnlab.errors import UserError


def batches(data: SineData, split: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = {"train": data.train_dataloader, "val": data.val_dataloader, "test": data.test_dataloader}[
        split
    ]()
    return list(loader)


def test_windows_are_the_lessons_linspaces_and_continue_each_other():
    data = SineData(num_steps=20, train_windows=75, val_windows=5, test_windows=10)
    data.setup()
    train = batches(data, "train")
    assert len(train) == 75
    for k, (x, y) in enumerate(train[:3]):
        assert x.shape == y.shape == (1, 20, 1)
        points = torch.sin(torch.linspace(k * math.pi, (k + 1) * math.pi, 21))  # the lesson's window k
        torch.testing.assert_close(x.flatten(), points[:-1], atol=1e-5, rtol=0)
        torch.testing.assert_close(y.flatten(), points[1:], atol=1e-5, rtol=0)
    # Window k+1 starts where window k's targets end: a carried state has read the curve before it.
    assert train[1][0][0, 0, 0] == train[0][1][0, -1, 0]


def test_the_held_out_curve_follows_the_training_curve():
    data = SineData(num_steps=10, train_windows=4, val_windows=2, test_windows=3)
    data.setup()
    (first_val, _), *_ = batches(data, "val")
    expected = torch.sin(torch.arange(40, 50) * math.pi / 10)  # after 4 windows of 10 steps
    torch.testing.assert_close(first_val.flatten(), expected.float(), atol=1e-5, rtol=0)
    assert len(batches(data, "test")) == 3
    assert data.network_sizes() == {"input_size": 1, "output_size": 1}


def test_batch_rows_read_their_own_stretch():
    data = SineData(num_steps=5, batch_size=2, train_windows=4, val_windows=2, test_windows=2)
    data.setup()
    (x, _), (x2, _) = batches(data, "train")
    assert x.shape == (2, 5, 1)
    torch.testing.assert_close(x2[:, 0], batches(data, "train")[0][1][:, -1])


def test_window_counts_must_divide_into_rows():
    with pytest.raises(UserError, match="data.val_windows=3 must be a multiple of data.batch_size=2"):
        SineData(batch_size=2, train_windows=4, val_windows=3, test_windows=2)
