"""`model.token_shift` (RWKV's time-shift) against a hand-written loop, carried across windows."""

from __future__ import annotations

import pytest
import torch

from rnnlab.models.inputs import TokenShift
from rnnlab.models.recurrent import RecurrentNet
from rnnlab.tasks.sequence import detach

V, E = 11, 6


def by_hand(network: RecurrentNet, tokens: torch.Tensor) -> torch.Tensor:
    """Each step's embedding mixed with the previous step's (zeros before the first), step by step,
    then the LSTM and the head: the network's outputs, written out."""
    mix = network.token_shift.mix
    embedded = network.embedding(tokens)
    previous = torch.zeros(tokens.shape[0], E)
    mixed = []
    for t in range(tokens.shape[1]):
        mixed.append(mix * embedded[:, t] + (1 - mix) * previous)
        previous = embedded[:, t]
    outputs, _ = network.rnn(torch.stack(mixed, dim=1))
    return network.head(outputs)


def test_the_shifted_network_equals_the_hand_written_mix():
    torch.manual_seed(0)
    network = RecurrentNet(V, V, "lstm", 8, embedding_dim=E, token_shift=True).eval()
    with torch.no_grad():  # a learned mix away from its start, so that every channel counts
        network.token_shift.mix.uniform_(0, 1)
    tokens = torch.randint(V, (3, 9))
    outputs, (_, last_input) = network(tokens)
    torch.testing.assert_close(outputs, by_hand(network, tokens))
    torch.testing.assert_close(last_input, network.embedding(tokens[:, -1]))  # what the next window mixes in


def test_the_shift_reaches_across_windows_and_its_mix_learns():
    torch.manual_seed(0)
    network = RecurrentNet(V, V, "gru", 8, embedding_dim=E, token_shift=True)
    tokens = torch.randint(V, (2, 10))
    whole, _ = network(tokens)
    first, state = network(tokens[:, :4])
    second, _ = network(tokens[:, 4:], detach(state))  # as the training loop carries it
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    # the first step of the second window saw the last token of the first: without the carried input
    # (zeros before it), it differs
    alone, _ = network(tokens[:, 4:], (detach(state)[0], None))
    assert not torch.allclose(alone[:, 0], second[:, 0])
    whole.sum().backward()
    assert network.token_shift.mix.grad is not None and network.token_shift.mix.grad.abs().sum() > 0


def test_the_mix_starts_from_all_previous_to_nearly_all_current_and_init_range_leaves_it():
    assert TokenShift(4).mix.tolist() == [0.0, 0.25, 0.5, 0.75]
    network = RecurrentNet(V, V, "lstm", 8, embedding_dim=4, token_shift=True, init_range=0.1)
    assert network.token_shift.mix.tolist() == [0.0, 0.25, 0.5, 0.75]


def test_detach_cuts_the_graph_of_a_nested_state():
    h = torch.ones(1, 2, 3, requires_grad=True) * 2
    state = ((h, h + 1), h[0] * 3)
    detached = detach(state)
    assert all(not part.requires_grad for part in (*detached[0], detached[1]))
    assert detach(None) is None


@pytest.mark.parametrize("tie", [True, "last_layer"])
def test_tying_with_an_automatic_embedding_learns_one_as_wide_as_the_hidden_state(tie):
    network = RecurrentNet(V, V, "lstm", 16, embedding_dim="auto", tie_weights=tie)
    assert network.embedding.weight.shape == (V, 16) and network.head.weight is network.embedding.weight
