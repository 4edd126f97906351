"""Text from a trained language model, printed as it is generated.

    python scripts/generate.py ckpt=PATH prefix="time traveller" length=200 [temperature=0.8 top_k=5
                               top_p=0.9 repetition_penalty=1.2 num_samples=3 seed=0]

Greedy by default (temperature=0). Needs only the checkpoint: the network's settings and the
vocabulary are stored in it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException


@dataclass
class GenerateConfig:
    ckpt: str = MISSING
    prefix: str | None = "time traveller"  # prefix= (nothing) is refused as empty
    length: int = 200
    temperature: float = 0.0  # 0: greedy
    top_k: int | None = None  # sample among the k most likely tokens
    top_p: float | None = None  # sample among the most likely tokens that make up this probability
    repetition_penalty: float = 1.0  # > 1: tokens already in the text become less likely
    allow_unknown: bool = False  # true: <unk> may be chosen (a word model's stand-in for rare words)
    num_samples: int = 1  # samples one after another, from one seeded generator
    seed: int = 0
    device: str = "cpu"


def main(argv: list[str]) -> int:
    # The prefix is text, taken as typed: parsed as YAML, `prefix=ROMEO:` would be a mapping and
    # `prefix=1` a number.
    prefixes = [arg.partition("=")[2] for arg in argv if arg.startswith("prefix=")]
    argv = [arg for arg in argv if not arg.startswith("prefix=")]
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(GenerateConfig), OmegaConf.from_dotlist(argv))
        if prefixes:
            cfg.prefix = prefixes[-1] or None
        ckpt = cfg.ckpt
    except OmegaConfBaseException as error:
        print(
            f"error: {str(error).splitlines()[0]} (usage: {__doc__.strip().splitlines()[2].strip()})",
            file=sys.stderr,
        )
        return 2

    import torch

    from rnnlab.checkpoint import load_language_model
    from rnnlab.errors import UserError
    from rnnlab.generation import Sampling, encode_prefix, stream

    try:
        sampling = Sampling(cfg.temperature, cfg.top_k, cfg.top_p, cfg.repetition_penalty, cfg.allow_unknown)
        if cfg.num_samples < 1:
            raise UserError(f"num_samples={cfg.num_samples} must be at least 1")
        if cfg.length < 1:
            raise UserError(f"length={cfg.length} must be at least 1")
        network, vocab = load_language_model(ckpt)
        prefix = vocab.decode(encode_prefix(vocab, cfg.prefix or ""))
        generator = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    network.to(cfg.device)
    for sample in range(cfg.num_samples):
        if cfg.num_samples > 1:
            print(f"[sample {sample + 1}]")
        print(prefix, end="", flush=True)
        for piece in stream(network, vocab, cfg.prefix, cfg.length, sampling, generator):
            print(piece, end="", flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
