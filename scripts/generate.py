"""Text from a trained language model, printed as it is generated.

    python scripts/generate.py ckpt=PATH prefix="time traveller" length=200
    python scripts/generate.py ckpt=PATH temperature=0.8 top_k=5 num_samples=3 seed=1

Greedy by default (temperature=0). Needs only the checkpoint: the network's settings and the
vocabulary are stored in it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

USAGE = "python scripts/generate.py ckpt=PATH [prefix=TEXT] [length=N] [key=value ...]"


@dataclass
class GenerateConfig:
    ckpt: str = field(default=MISSING, metadata={"help": "a language model's checkpoint (a run's .ckpt)"})
    prefix: str | None = field(
        default="time traveller",
        metadata={"help": "the text to continue, taken as typed (prefix= with nothing is refused as empty)"},
    )
    length: int = field(default=200, metadata={"help": "tokens generated after the prefix"})
    temperature: float = field(
        default=0.0, metadata={"help": "0: greedy (the most likely token); > 0: sample"}
    )
    top_k: int | None = field(default=None, metadata={"help": "sample among the k most likely tokens"})
    top_p: float | None = field(
        default=None, metadata={"help": "sample among the most likely tokens that make up this probability"}
    )
    repetition_penalty: float = field(
        default=1.0, metadata={"help": "> 1: tokens already in the text become less likely"}
    )
    allow_unknown: bool = field(
        default=False, metadata={"help": "true: <unk> may be chosen (a word model's stand-in for rare words)"}
    )
    num_samples: int = field(
        default=1, metadata={"help": "samples one after another, from one seeded generator"}
    )
    seed: int = field(default=0, metadata={"help": "the sampling generator's seed"})
    device: str = field(default="cpu", metadata={"help": "where the network runs: cpu or cuda"})


def help_text() -> str:
    from rnnlab.settings_help import settings_help

    description = (
        "Text from a trained language model, printed as it is generated. Greedy by default "
        "(temperature=0). Needs only the checkpoint: the network's settings and the vocabulary are "
        "stored in it."
    )
    examples = [line.strip() for line in __doc__.splitlines() if line.strip().startswith("python ")]
    return settings_help(GenerateConfig, USAGE, description, examples)


def main(argv: list[str] | None = None) -> int:
    from rnnlab.settings_help import asks_for_help, unknown_setting

    argv = sys.argv[1:] if argv is None else list(argv)
    if asks_for_help(argv):
        print(help_text(), end="")
        return 0
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
        print(unknown_setting(GenerateConfig, str(error).splitlines()[0]), file=sys.stderr)
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
    sys.exit(main())
