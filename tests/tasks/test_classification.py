import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rnnlab.contract import ClassInputs
from rnnlab.errors import UserError
from rnnlab.models.recurrent import RecurrentNet
from rnnlab.tasks.classification import ClassificationTask


def task(network, class_names=("a", "b", "c"), binary=False, label_per_step=False, **kwargs):
    inputs = ClassInputs(tuple(class_names), binary=binary, label_per_step=label_per_step)
    return ClassificationTask(network, inputs, torch.optim.SGD, **kwargs)


def test_a_sequence_is_classified_by_its_last_step_unless_labels_are_per_step():
    torch.manual_seed(0)
    network = RecurrentNet(4, 3, "gru", 8)
    x = torch.randn(2, 5, 4)
    outputs, _ = network(x)
    torch.testing.assert_close(task(network).predict(x), outputs[:, -1])
    torch.testing.assert_close(task(network, label_per_step=True).predict(x), outputs)


def test_the_binary_loss_is_the_lessons_sigmoid_then_bce():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 1), torch.tensor([0, 1, 1, 0, 1, 0])
    binary = task(nn.Linear(1, 1), class_names=["fail", "pass"], binary=True)
    expected = F.binary_cross_entropy(logits.sigmoid().flatten(), labels.float())
    torch.testing.assert_close(binary.loss(logits, labels), expected)


def test_per_step_predictions_decode_to_text():
    hello = task(nn.Identity(), class_names=["e", "h", "l", "o"], label_per_step=True)
    logits = F.one_hot(torch.tensor([3, 1, 2, 3, 2]), 4).float()
    assert hello.decode(logits) == "ohlol"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_names": ["only"]}, "needs 2 or more classes"),
        ({"class_names": ["a", "b", "c"], "binary": True}, "binary: exactly 2"),
        ({"loss_reduction": "max"}, "task.loss_reduction='max' is unknown"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(UserError, match=message):
        task(nn.Linear(1, 3), **kwargs)
