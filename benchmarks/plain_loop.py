"""The plain PyTorch training loop alone, in a process that never imports lightning or hydra.

    python benchmarks/plain_loop.py --hidden-size N [--model rnn_scratch|rnn|gru|lstm] [--batch-size 32]
                                    [--num-steps 35] [--steps 200] [--warmup 20] [--optimizer sgd|adam|adamw]
                                    [--device cpu|cuda] [--data-path FILE]

Trains the model for `--steps` batches the way a PyTorch user would by hand and prints its tokens/s.
It is the baseline of `memory.py`, which reads this process's peak memory. Without hydra it cannot
compose a config, so every size is an option: memory.py passes the hidden size it read from
conf/model/<name>.yaml. The text is found as `data=timemachine` finds it: `--data-path`, else
`timemachine.txt` in `$RNNLAB_DATA_DIR` (default ~/.cache/rnnlab), else the copy shipped with rnnlab;
d2l preprocessing, char tokens, the first 90% for training.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from common import add_data_option, plain_tokens_per_s


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rnn", choices=["rnn_scratch", "rnn", "gru", "lstm"])
    parser.add_argument("--hidden-size", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-steps", type=int, default=35)
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    parser.add_argument("--warmup", type=int, default=20, help="steps left out of the printed rate")
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    add_data_option(parser)
    args = parser.parse_args(argv)

    import torch

    from rnnlab.data.files.download import BUNDLED
    from rnnlab.data.splits import cut
    from rnnlab.data.streams import SequentialPartition, TokenWindows
    from rnnlab.data.text.corpus import preprocess, read_text, tokenize
    from rnnlab.data.text.vocab import Vocab
    from rnnlab.models.recurrent import RecurrentNet
    from rnnlab.models.rnn_scratch import RNNScratch

    cached = Path(os.environ.get("RNNLAB_DATA_DIR", "~/.cache/rnnlab")).expanduser() / "timemachine.txt"
    path = args.data_path or (cached if cached.exists() else BUNDLED / "timemachine.txt")
    tokens = tokenize(preprocess(read_text(path), "d2l"), "char")
    vocab = Vocab.build(tokens)
    train = cut(torch.tensor(vocab.encode(tokens)), (0.9, 0.05, 0.05))["train"]
    sampler = SequentialPartition(len(train), args.batch_size, args.num_steps)
    windows = TokenWindows(train)
    batches = (windows[w] for _, w in zip(range(args.steps), sampler, strict=False))

    v = len(vocab)
    if args.model == "rnn_scratch":
        network = RNNScratch(v, v, args.hidden_size)
    else:
        network = RecurrentNet(v, v, args.model, args.hidden_size)
    optimizer = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[args.optimizer]
    # The learning rate changes neither the speed nor the memory of a step.
    rate = plain_tokens_per_s(
        network, batches, lambda p: optimizer(p, lr=0.01), 1.0, args.device, args.warmup
    )
    print(f"{args.model}, hidden {args.hidden_size}: {rate:,.0f} tokens/s")


if __name__ == "__main__":
    main()
