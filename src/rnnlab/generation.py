"""Text from a trained language model: greedy, or sampled (temperature, top-k, top-p), streamed.

`stream` yields the text piece by piece as the network produces it; `generate` returns it whole.
Both take a `Sampling`: greedy by default, as the book generates.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from rnnlab.data.text.vocab import UNKNOWN, Vocab
from rnnlab.errors import UserError


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen from the network's scores.

    `repetition_penalty` > 1 makes tokens already in the text less likely: a positive score is
    divided by it, a negative one multiplied (the rule of Keskar et al.'s CTRL, as Hugging Face
    applies it); it applies to greedy decoding too. Then, unless `temperature` is 0 (greedy), a token
    is drawn from softmax(scores / temperature), restricted to the `top_k` highest scores and to the
    smallest set of tokens whose probabilities add up to `top_p` (nucleus sampling).

    `<unk>` is never chosen unless `allow_unknown`: a word model's most likely next word is often
    `<unk>` (it stands for every rare word), and a text of `<unk>`s says nothing.
    """

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    allow_unknown: bool = False

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise UserError(f"temperature={self.temperature} must be >= 0 (0 is greedy)")
        if self.top_k is not None and self.top_k < 1:
            raise UserError(f"top_k={self.top_k} must be at least 1 (or null for no limit)")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise UserError(f"top_p={self.top_p} must be in (0, 1] (or null for no limit)")
        if self.repetition_penalty <= 0:
            raise UserError(f"repetition_penalty={self.repetition_penalty} must be positive (1: none)")

    def next_token(self, logits: torch.Tensor, seen: torch.Tensor, generator: torch.Generator | None) -> int:
        """The next token id, from the last step's scores [V] and the ids in the text so far."""
        logits = logits.float()
        if self.repetition_penalty != 1.0:
            scores = logits[seen]
            logits = logits.scatter(
                0,
                seen,
                torch.where(scores > 0, scores / self.repetition_penalty, scores * self.repetition_penalty),
            )
        if self.temperature == 0:
            return int(logits.argmax())
        if self.top_k is not None:
            kth_largest = torch.topk(logits, min(self.top_k, logits.numel())).values[-1]
            logits = logits.masked_fill(logits < kth_largest, float("-inf"))
        probabilities = torch.softmax(logits / self.temperature, dim=-1)
        if self.top_p is not None:
            ordered, order = probabilities.sort(descending=True)
            # A token stays if the tokens more likely than it add up to less than top_p: the most
            # likely one always does.
            outside = ordered.cumsum(0) - ordered >= self.top_p
            probabilities = probabilities.scatter(0, order, ordered.masked_fill(outside, 0.0))
        return int(torch.multinomial(probabilities, 1, generator=generator))


def encode_prefix(vocab: Vocab, prefix: str) -> list[int]:
    tokens = vocab.split(prefix)
    if not tokens:
        raise UserError("the prefix is empty; give some text to start from, e.g. prefix='time traveller'")
    unknown = sorted({token for token in tokens if token not in vocab.index})
    if unknown:
        shown = ", ".join(repr(token) for token in unknown[:10])
        allowed = " ".join(repr(token) for token in vocab.tokens[1:40]) + (" ..." if len(vocab) > 40 else "")
        raise UserError(
            f"the prefix has token(s) outside the model's {len(vocab)}-symbol vocabulary: {shown}; "
            f"use only these: {allowed}"
        )
    return vocab.encode(tokens)


@torch.no_grad()
def stream(
    network: nn.Module,
    vocab: Vocab,
    prefix: str,
    length: int,
    sampling: Sampling = Sampling(),
    generator: torch.Generator | None = None,
) -> Iterator[str]:
    """The `length` tokens that follow the prefix, each as text as soon as it is chosen.

    The prefix is read in one forward pass to build the state; then each new token is fed back in.
    Joined, the pieces are what `vocab.decode` makes of the new tokens after the prefix.
    """
    if length < 1:
        raise UserError(f"length={length} must be at least 1")
    ids = encode_prefix(vocab, prefix)
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    try:
        seen = torch.tensor(ids, device=device)
        logits, state = network(seen[None])
        for _ in range(length):
            scores = logits[0, -1]
            if not sampling.allow_unknown and vocab.tokens[0] == UNKNOWN and len(vocab) > 1:
                scores = scores.clone()
                scores[0] = float("-inf")
            token = sampling.next_token(scores, seen, generator)
            seen = torch.cat([seen, seen.new_tensor([token])])
            yield vocab.joiner + vocab.tokens[token] if vocab.joiner else vocab.tokens[token]
            logits, state = network(seen[None, -1:], state)
    finally:
        network.train(was_training)


def generate(
    network: nn.Module,
    vocab: Vocab,
    prefix: str,
    length: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
) -> str:
    """The prefix followed by `length` generated tokens (greedy unless `temperature` > 0)."""
    sampling = Sampling(temperature, top_k, top_p, repetition_penalty)
    ids = encode_prefix(vocab, prefix)
    return vocab.decode(ids) + "".join(stream(network, vocab, prefix, length, sampling, generator))
