"""The tutorials' small synthetic sets: synthetic_seq, hello and the (x, y) points."""

import pytest
import torch

from rnnlab.contract import ClassInputs, TaskInputs
from rnnlab.data.lessons.hello import HelloData
from rnnlab.data.lessons.points import PointsData
from rnnlab.data.lessons.synthetic import SyntheticSequenceData
from rnnlab.errors import UserError


def test_synthetic_sequences_have_the_walkthroughs_shapes_and_chance_labels():
    data = SyntheticSequenceData(num_samples=1000, seed=3)
    data.setup()
    x, y = data.splits["train"]
    assert x.shape == (1000, 1, 10) and y.shape == (1000,)
    assert 0.4 < y.float().mean() < 0.6  # random labels, about half each
    assert data.network_sizes() == {"input_size": 10, "output_size": 2}
    x_batch, y_batch = next(iter(data.train_dataloader()))
    assert x_batch.shape == (16, 1, 10) and y_batch.shape == (16,)


def test_the_planted_signal_decides_the_label_and_the_seed_decides_the_draw():
    data = SyntheticSequenceData(num_samples=50, seq_len=4, num_classes=3, signal=True, seed=1)
    data.setup()
    x, y = data.splits["train"]
    assert torch.equal(y, x[:, :, :3].sum(1).argmax(1))
    again = SyntheticSequenceData(num_samples=50, seq_len=4, num_classes=3, signal=True, seed=1)
    again.setup()
    assert torch.equal(again.splits["val"][0], data.splits["val"][0])
    with pytest.raises(UserError, match="data.num_features=2 must be at least data.num_classes=3"):
        SyntheticSequenceData(num_features=2, num_classes=3, signal=True)


def test_hello_is_one_sequence_over_the_sorted_alphabet():
    data = HelloData()
    data.setup()
    x, y = data.splits["train"]
    assert data.alphabet == ["e", "h", "l", "o"]
    assert x.tolist() == [[1, 0, 2, 2, 3]] and y.tolist() == [[3, 1, 2, 3, 2]]
    assert data.task_inputs() == ClassInputs(("e", "h", "l", "o"), label_per_step=True)
    with pytest.raises(UserError, match="must be non-empty and of the same length"):
        HelloData(source="hello", target="ohl")


def test_the_course_points_are_one_full_batch_validated_on_x_4():
    data = PointsData(x=[1, 2, 3], y=[2, 4, 6], val_x=[4], val_y=[8])
    data.setup()
    ((x, y),) = list(data.train_dataloader())
    assert sorted(x.flatten().tolist()) == [1.0, 2.0, 3.0] and torch.equal(y, 2 * x)  # all three, shuffled
    assert data.splits["test"][0].tolist() == [[4.0]]
    assert data.task_inputs() == TaskInputs() and data.hands_over is TaskInputs


def test_the_noisy_line_is_drawn_around_y_5x_plus_30():
    data = PointsData(noisy_line={"points": 2000, "noise_std": 1.0}, seed=0)
    data.setup()
    x, y = data.splits["train"]
    assert x.min() >= -0.5 and x.max() <= 2.9
    slope, intercept = torch.linalg.lstsq(torch.cat([x, torch.ones_like(x)], 1), y).solution.flatten()
    assert slope == pytest.approx(5, abs=0.1) and intercept == pytest.approx(30, abs=0.2)
    assert not torch.equal(data.splits["val"][0], x[:2000])  # a fresh draw per split


def test_class_points_need_class_indices():
    data = PointsData(x=[1, 2, 3], y=[0, 0, 1], classes=["fail", "pass"])
    data.setup()
    assert data.task_inputs() == ClassInputs(("fail", "pass"), binary=True) and data.hands_over is ClassInputs
    assert data.network_sizes() == {"input_size": 1, "output_size": 1}
    bad = PointsData(x=[1, 2], y=[0, 2], classes=["fail", "pass"])
    with pytest.raises(UserError, match="class indices 0..1"):
        bad.setup()
    with pytest.raises(UserError, match="data.x and data.y must be non-empty lists of the same length"):
        PointsData(x=[1, 2], y=[1]).setup()
