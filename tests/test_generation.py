import pytest
import torch

from rnnlab.data.text.vocab import Vocab
from rnnlab.errors import UserError
from rnnlab.generation import Sampling, generate, stream
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


def greedy_by_hand(network, prefix: str, length: int) -> str:
    ids = VOCAB.encode(list(prefix))
    logits, state = network(torch.tensor([ids]))
    for _ in range(length):
        ids.append(int(logits[0, -1].argmax()))
        logits, state = network(torch.tensor([[ids[-1]]]), state)
    return VOCAB.decode(ids)


def test_greedy_is_the_argmax_at_every_step(network):
    with torch.no_grad():
        assert generate(network, VOCAB, "time", 40) == greedy_by_hand(network, "time", 40)


def test_streamed_pieces_make_the_generated_text(network):
    seed = torch.Generator().manual_seed(3)
    pieces = list(stream(network, VOCAB, "time", 25, Sampling(temperature=1.0, top_p=0.9), seed))
    assert len(pieces) == 25
    again = generate(network, VOCAB, "time", 25, 1.0, None, torch.Generator().manual_seed(3), top_p=0.9)
    assert "time" + "".join(pieces) == again


def test_a_tiny_top_p_keeps_only_the_most_likely_token(network):
    greedy = generate(network, VOCAB, "time", 30)
    for seed in range(3):
        sampled = generate(
            network, VOCAB, "time", 30, 2.0, None, torch.Generator().manual_seed(seed), top_p=1e-6
        )
        assert sampled == greedy


def test_top_p_sampling_draws_only_from_the_nucleus():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    draws = {
        Sampling(temperature=1.0, top_p=0.75).next_token(logits, torch.tensor([0]), None) for _ in range(300)
    }
    assert draws == {0, 1}  # 0.5 + 0.3 reach 0.75; the rest are never drawn


def test_the_repetition_penalty_divides_positive_scores_and_multiplies_negative_ones(network):
    seen = torch.tensor([0])
    assert Sampling().next_token(torch.tensor([3.0, 2.0, -1.0]), seen, None) == 0
    assert (
        Sampling(repetition_penalty=2.0).next_token(torch.tensor([3.0, 2.0, -1.0]), seen, None) == 1
    )  # 1.5 < 2
    assert (
        Sampling(repetition_penalty=2.0).next_token(torch.tensor([-0.5, -0.6]), seen, None) == 1
    )  # -1 < -0.6
    assert generate(network, VOCAB, "t", 20, repetition_penalty=1.0) == generate(network, VOCAB, "t", 20)
    assert generate(network, VOCAB, "t", 20, repetition_penalty=5.0) != generate(network, VOCAB, "t", 20)


@pytest.mark.parametrize(
    ("sampling", "message"),
    [
        ({"top_p": 0.0}, "top_p=0.0 must be in"),
        ({"top_p": 1.5}, "top_p=1.5 must be in"),
        ({"repetition_penalty": 0.0}, "repetition_penalty=0.0 must be positive"),
        ({"temperature": -1.0}, "temperature=-1.0 must be >= 0"),
    ],
)
def test_bad_sampling_settings_are_refused(sampling, message):
    with pytest.raises(UserError, match=message):
        Sampling(**sampling)
