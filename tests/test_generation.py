import pytest
import torch

from rnnlab.data.text.vocab import Vocab
from rnnlab.errors import UserError
from rnnlab.generation import generate
from rnnlab.models.recurrent import RecurrentNet

VOCAB = Vocab.build("the time traveller")


@pytest.fixture
def network():
    torch.manual_seed(0)
    return RecurrentNet(len(VOCAB), len(VOCAB), "gru", 12)


def test_greedy_is_deterministic_and_starts_with_the_prefix(network):
    text = generate(network, VOCAB, "time", 30)
    assert text.startswith("time") and len(text) == 34
    assert generate(network, VOCAB, "time", 30) == text


def test_top_k_of_one_is_greedy_and_sampling_follows_the_seed(network):
    greedy = generate(network, VOCAB, "time", 30)
    assert generate(network, VOCAB, "time", 30, temperature=1.0, top_k=1) == greedy
    draw = [
        generate(network, VOCAB, "time", 30, 1.5, None, torch.Generator().manual_seed(s)) for s in (1, 1, 2)
    ]
    assert draw[0] == draw[1] != draw[2]


@pytest.mark.parametrize(
    ("prefix", "length", "message"),
    [
        ("Time", 10, "outside the model's .*: 'T'"),
        ("", 10, "the prefix is empty"),
        ("time", 0, "length=0 must be at least 1"),
    ],
)
def test_bad_requests_are_refused(network, prefix, length, message):
    with pytest.raises(UserError, match=message):
        generate(network, VOCAB, prefix, length)
