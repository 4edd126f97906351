import pytest
import torch

from rnnlab.errors import UserError
from rnnlab.models.recurrent import RecurrentLM
from rnnlab.models.rnn_scratch import RNNScratch

V = 13


@pytest.mark.parametrize(
    "make",
    [
        lambda: RecurrentLM(V, "rnn", 8),
        lambda: RecurrentLM(V, "gru", 8, num_layers=2),
        lambda: RecurrentLM(V, "lstm", 8, num_layers=2, embedding_dim=5),
        lambda: RNNScratch(V, 8),
    ],
)
def test_carrying_the_state_equals_reading_the_whole_sequence(make):
    torch.manual_seed(0)
    network = make().eval()
    tokens = torch.randint(V, (3, 12))
    whole, _ = network(tokens)
    first, state = network(tokens[:, :5])
    second, _ = network(tokens[:, 5:], state)
    assert whole.shape == (3, 12, V)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)


def test_bidirectional_warns_that_it_is_no_language_model():
    with pytest.warns(UserWarning, match="cannot be a left-to-right language model"):
        network = RecurrentLM(V, "lstm", 8, bidirectional=True)
    assert network(torch.randint(V, (2, 4)))[0].shape == (2, 4, V)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell": "transformer"}, "model.cell='transformer' is unknown"),
        ({"hidden_size": 0}, "model.hidden_size=0 must be positive"),
        ({"dropout": 1.5}, r"model.dropout=1.5 must be in \[0, 1\)"),
    ],
)
def test_bad_sizes_are_refused(kwargs, message):
    with pytest.raises(UserError, match=message):
        RecurrentLM(V, **kwargs)
