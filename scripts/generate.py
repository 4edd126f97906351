"""Text from a trained language model.

    python scripts/generate.py ckpt=PATH prefix="time traveller" length=200 [temperature=0.8 top_k=5 seed=0]

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
    seed: int = 0
    device: str = "cpu"


def main(argv: list[str]) -> int:
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(GenerateConfig), OmegaConf.from_dotlist(argv))
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
    from rnnlab.generation import generate

    try:
        network, vocab = load_language_model(ckpt)
        generator = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
        text = generate(
            network.to(cfg.device), vocab, cfg.prefix or "", cfg.length, cfg.temperature, cfg.top_k, generator
        )
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
