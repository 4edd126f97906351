import pytest
import torch
from torch.nn import functional as F

from rnnlab.errors import UserError
from rnnlab.models.recurrent import RecurrentNet
from rnnlab.models.rnn_cell import RNNCellNet
from rnnlab.models.rnn_scratch import RNNScratch

V = 13


@pytest.mark.parametrize(
    "make",
    [
        lambda: RecurrentNet(V, V, "rnn", 8),
        lambda: RecurrentNet(V, V, "gru", 8, num_layers=2),
        lambda: RecurrentNet(V, V, "lstm", 8, num_layers=2, embedding_dim=5),
        lambda: RecurrentNet(V, V, "lstm", 8, embedding_dim=5, token_shift=True),
        lambda: RecurrentNet(V, V, "gru", 8, token_shift=True),  # one-hot inputs shifted
        lambda: RNNScratch(V, V, 8),
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


def test_bidirectional_networks_read_both_directions():
    network = RecurrentNet(V, 3, "lstm", 8, bidirectional=True)
    assert network.head.in_features == 16
    assert network(torch.randint(V, (2, 4)))[0].shape == (2, 4, 3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RecurrentNet(4, 2, "gru", 8),
        lambda: RNNScratch(4, 2, 8),
        lambda: RNNCellNet(4, 2, 8),
    ],
)
def test_feature_sequences_go_in_as_they_are(make):
    torch.manual_seed(0)
    network = make()
    features = torch.randn(3, 6, 4)
    outputs, _ = network(features)
    assert outputs.shape == (3, 6, 2)
    # A one-hot feature sequence is the same input as the token ids it encodes.
    tokens = torch.randint(4, (3, 6))
    torch.testing.assert_close(network(F.one_hot(tokens, 4).float())[0], network(tokens)[0])


def test_the_cell_stepped_by_hand_equals_nn_rnn_with_the_same_weights():
    torch.manual_seed(0)
    by_hand = RNNCellNet(V, 5, hidden_size=7)
    reference = RecurrentNet(V, 5, "rnn", hidden_size=7)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(reference.rnn, f"{name}_l0").copy_(getattr(by_hand.cell, name))
        reference.head.load_state_dict(by_hand.head.state_dict())
    tokens = torch.randint(V, (3, 9))
    h0 = torch.randn(3, 7)
    outputs, h = by_hand(tokens, h0)
    expected, h_ref = reference(tokens, h0[None])
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close(h, h_ref[0])


def test_without_a_head_the_hidden_state_is_the_output():
    network = RecurrentNet(4, 4, "rnn", hidden_size=4, head=False)
    outputs, state = network(torch.randint(4, (1, 5)))
    torch.testing.assert_close(outputs[:, -1], state[0])
    with pytest.raises(UserError, match="set model.hidden_size=4 or model.head=true"):
        RNNCellNet(4, 4, hidden_size=8, head=False)


def test_an_embedding_needs_token_inputs():
    network = RecurrentNet(4, 2, "lstm", 8, embedding_dim=3)
    with pytest.raises(UserError, match="model.embedding_dim needs token inputs"):
        network(torch.randn(2, 5, 4))


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
        RecurrentNet(V, V, **kwargs)
