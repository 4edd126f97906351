"""Text from a trained language model: greedy, or sampled with temperature and top-k."""

from __future__ import annotations

import torch
from torch import nn

from rnnlab.data.text.vocab import Vocab
from rnnlab.errors import UserError


def next_token(
    logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
) -> int:
    """Greedy when `temperature` is 0; else a draw from softmax(logits / temperature) over the top k."""
    if temperature == 0:
        return int(logits.argmax())
    if top_k is not None:
        kth_largest = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    probabilities = torch.softmax(logits.float() / temperature, dim=-1)
    return int(torch.multinomial(probabilities, 1, generator=generator))


@torch.no_grad()
def generate(
    network: nn.Module,
    vocab: Vocab,
    prefix: str,
    length: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> str:
    """The prefix followed by `length` generated tokens.

    The prefix is read in one forward pass to build the state; then each new token is fed back in.
    """
    if length < 1:
        raise UserError(f"length={length} must be at least 1")
    if temperature < 0:
        raise UserError(f"temperature={temperature} must be >= 0 (0 is greedy)")
    if top_k is not None and top_k < 1:
        raise UserError(f"top_k={top_k} must be at least 1 (or null for no limit)")
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
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    logits, state = network(torch.tensor([vocab.encode(tokens)], device=device))
    generated = [next_token(logits[0, -1], temperature, top_k, generator)]
    while len(generated) < length:
        logits, state = network(torch.tensor([[generated[-1]]], device=device), state)
        generated.append(next_token(logits[0, -1], temperature, top_k, generator))
    network.train(was_training)
    return vocab.decode([*vocab.encode(tokens), *generated])
