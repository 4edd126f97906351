"""Does Lightning + Hydra cost anything? rnnlab's training path against a plain PyTorch loop.

    python scripts/benchmark.py [--models rnn_scratch,rnn,gru,lstm] [--batch-size 32] [--num-steps 35]
                                [--device cpu|cuda] [--steps 200] [--repeats 3] [--out benchmark.md]

Prints Markdown tables and writes them to `--out` (default `outputs/benchmark.md`):
- training tokens/s of (a) `Trainer.fit` on the real task and datamodule, with the default logging
  and checkpointing (progress bar off), and (b) a plain loop over the same network object, batches,
  optimiser and clipping; alternated in one process, after warm-up; the ratio is the median of
  `--repeats` pairs;
- start-up: `train.py --cfg job`, process start to the first optimiser step, and `import lightning`;
- peak RSS of a short training run through train.py and through the plain loop;
- with `--batch-sizes 32,64,...`: tokens/s of the rnnlab path at each batch size (for GPUs).

Needs the corpus: `RNNLAB_DATA_DIR` (or a download). Runs for a few minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Sizes as in the d2l book: the scratch RNN with 512 hidden units, torch's modules with 256.
HIDDEN = {"rnn_scratch": 512, "rnn": 256, "gru": 256, "lstm": 256}
PLAIN_CHILD = "--plain-loop-child"


def compose(model: str, args: argparse.Namespace, *extra: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    overrides = [
        f"model={model}",
        f"model.hidden_size={args.hidden_size or HIDDEN[model]}",
        f"data.batch_size={args.batch_size}",
        f"data.num_steps={args.num_steps}",
        f"optimizer={args.optimizer}",
        f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        f"paths.output_dir={tempfile.mkdtemp(dir=args.workdir)}",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def rnnlab_tokens_per_s(cfg, datamodule, task, steps: int, warmup: int) -> float:
    """One epoch of `steps` batches through Trainer.fit, with the callbacks and loggers of the config."""
    from omegaconf import open_dict

    from rnnlab.callbacks.throughput import Throughput
    from rnnlab.run.build import create, create_callbacks

    clock = Throughput(warmup_steps=warmup)
    quiet = cfg.copy()
    with open_dict(quiet):
        quiet.callbacks.pop("progress", None)
    callbacks = [*create_callbacks(quiet, task), clock]
    loggers = [create(logger) for logger in cfg.logger.values()]
    trainer = create(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers,
        max_epochs=1,
        limit_train_batches=steps,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, datamodule=datamodule)
    return clock.last_rate


def plain_tokens_per_s(network, batches, optimizer_factory, clip: float, device: str, warmup: int) -> float:
    """The loop a PyTorch user writes by hand: forward, loss, backward, clip, step, carry the state."""
    import torch
    from torch.nn import functional as F

    from rnnlab.tasks.sequence import detach

    network.to(device).train()
    optimizer = optimizer_factory(network.parameters())
    state, tokens, started = None, 0, 0.0
    for step, (x, y) in enumerate(batches):
        if step == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            started, tokens = time.perf_counter(), 0
        x, y = x.to(device), y.to(device)
        logits, state = network(x, state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), clip)
        optimizer.step()
        state = detach(state)
        tokens += y.numel()
    if device == "cuda":
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - started)


def bare_lightning_tokens_per_s(
    network, loader, optimizer_factory, clip: float, args: argparse.Namespace
) -> float:
    """Lightning's own floor: a bare LightningModule doing the plain loop's step, nothing else."""
    import lightning as L
    import torch
    from torch.nn import functional as F

    from rnnlab.callbacks.throughput import Throughput
    from rnnlab.tasks.sequence import detach

    class PlainStep(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.network, self.state = network, None

        def training_step(self, batch, batch_idx):
            x, y = batch
            logits, state = self.network(x, self.state)
            self.state = detach(state)
            return F.cross_entropy(logits.flatten(0, 1), y.flatten())

        def configure_optimizers(self):
            return optimizer_factory(self.parameters())

    clock = Throughput(warmup_steps=args.warmup)
    trainer = L.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu",
        max_epochs=1,
        limit_train_batches=args.steps,
        gradient_clip_val=clip,
        callbacks=[clock],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(PlainStep(), train_dataloaders=loader)
    torch.set_grad_enabled(True)
    return clock.last_rate


def throughput(model: str, args: argparse.Namespace) -> dict:
    import lightning as L
    from hydra.utils import instantiate

    from rnnlab.run.build import build

    cfg = compose(model, args)
    L.seed_everything(0, verbose=False)
    datamodule, task, _ = build(cfg)
    loader = datamodule.train_dataloader()  # the same sampler, seed and epoch as Trainer.fit's first epoch
    optimizer_factory = instantiate(cfg.optimizer)
    # The same 35-step optimiser steps, K of them per Lightning batch (pieces of a K x 35-step batch).
    pieces = args.pieces
    cfg_pieces = compose(
        model, args, f"data.num_steps={pieces * args.num_steps}", f"task.tbptt_steps={args.num_steps}"
    )
    datamodule_pieces, task_pieces, _ = build(cfg_pieces)
    clip = cfg.task.gradient_clip_val
    ours, plain, ours_pieces, bare = [], [], [], []
    for _ in range(args.repeats):  # alternate, so drifts in machine speed hit both sides alike
        ours.append(rnnlab_tokens_per_s(cfg, datamodule, task, args.steps, args.warmup))
        ours_pieces.append(
            rnnlab_tokens_per_s(
                cfg_pieces,
                datamodule_pieces,
                task_pieces,
                args.steps // pieces,
                max(1, args.warmup // pieces),
            )
        )
        bare.append(bare_lightning_tokens_per_s(task.network, loader, optimizer_factory, clip, args))
        batches = (batch for _, batch in zip(range(args.steps), loader, strict=False))
        plain.append(
            plain_tokens_per_s(task.network, batches, optimizer_factory, clip, args.device, args.warmup)
        )
    ratios = [a / b for a, b in zip(ours, plain, strict=True)]
    ratios_pieces = [a / b for a, b in zip(ours_pieces, plain, strict=True)]
    ratios_bare = [a / b for a, b in zip(bare, plain, strict=True)]
    return {
        "ratio_bare": statistics.median(ratios_bare),
        "pieces": statistics.median(ours_pieces),
        "ratio_pieces": statistics.median(ratios_pieces),
        "rnnlab": statistics.median(ours),
        "plain": statistics.median(plain),
        "ratio": statistics.median(ratios),
    }


def scratch_against_module(args: argparse.Namespace) -> tuple[float, float]:
    """Plain-loop tokens/s of the scratch RNN and of nn.RNN with the same hidden size."""
    from hydra.utils import instantiate

    from rnnlab.run.build import build

    hidden = args.hidden_size or HIDDEN["rnn_scratch"]
    rates: dict[str, list[float]] = {"rnn_scratch": [], "rnn": []}
    built = {}
    for model in rates:
        cfg = compose(model, argparse.Namespace(**{**vars(args), "hidden_size": hidden}))
        datamodule, task, _ = build(cfg)
        built[model] = (datamodule, task.network, instantiate(cfg.optimizer))
    for _ in range(args.repeats):
        for model, (datamodule, network, optimizer) in built.items():
            batches = (b for _, b in zip(range(args.steps), datamodule.train_dataloader(), strict=False))
            rates[model].append(
                plain_tokens_per_s(network, batches, optimizer, 1.0, args.device, args.warmup)
            )
    return statistics.median(rates["rnn_scratch"]), statistics.median(rates["rnn"])


def wall_time(command: list[str], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def first_step_seconds(args: argparse.Namespace, repeats: int = 3) -> float:
    """From launching train.py to the end of its first optimiser step."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            stamp = Path(folder) / "first_step"
            command = [
                sys.executable,
                "scripts/train.py",
                f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
                "trainer.max_steps=1",
                "trainer.num_sanity_val_steps=0",
                "trainer.limit_val_batches=1",
                "test=false",
                "+callbacks.step_clock._target_=rnnlab.callbacks.throughput.Throughput",
                f"+callbacks.step_clock.first_step_file={stamp}",
                f"hydra.run.dir={folder}/run",
            ]
            started = time.time()
            subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
            times.append(float(stamp.read_text()) - started)
    return statistics.median(times)


def peak_rss_mb(command: list[str]) -> float:
    """Peak resident memory of one child process (os.wait4 reports that child's own usage)."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise RuntimeError(f"{' '.join(command)} failed with status {status}")
    return usage.ru_maxrss / 1024  # KiB on Linux


def plain_loop_child(model: str, args: argparse.Namespace) -> None:
    """The plain loop alone in a process that never imports lightning or hydra (memory baseline)."""
    import torch

    from rnnlab.data.streams import SequentialPartition, TokenWindows
    from rnnlab.data.text.corpus import preprocess, read_text, tokenize
    from rnnlab.data.text.vocab import Vocab
    from rnnlab.models.recurrent import RecurrentNet
    from rnnlab.models.rnn_scratch import RNNScratch

    path = Path(os.environ.get("RNNLAB_DATA_DIR", "~/.cache/rnnlab")).expanduser() / "timemachine.txt"
    tokens = tokenize(preprocess(read_text(path), "d2l"), "char")
    vocab = Vocab.build(tokens)
    ids = torch.tensor(vocab.encode(tokens))[: int(len(tokens) * 0.9)]
    sampler = SequentialPartition(len(ids), args.batch_size, args.num_steps)
    windows = TokenWindows(ids)
    batches = (windows[w] for _, w in zip(range(args.steps), sampler, strict=False))
    hidden = args.hidden_size or HIDDEN[model]
    v = len(vocab)
    network = RNNScratch(v, v, hidden) if model == "rnn_scratch" else RecurrentNet(v, v, model, hidden)
    optimizer = torch.optim.Adam if args.optimizer == "adam" else torch.optim.SGD
    plain_tokens_per_s(network, batches, lambda p: optimizer(p, lr=0.01), 1.0, args.device, args.warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="rnn_scratch,rnn,gru,lstm")
    parser.add_argument(
        "--hidden-size", type=int, default=None, help="default: 512 for rnn_scratch, else 256"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-steps", type=int, default=35)
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=200, help="training steps per measurement")
    parser.add_argument("--warmup", type=int, default=20, help="steps left out of each measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--pieces", type=int, default=4, help="also: K pieces of num_steps per Lightning batch"
    )
    parser.add_argument(
        "--batch-sizes", default="", help="e.g. 32,64,128,256,512,1024: tokens/s per batch size"
    )
    parser.add_argument("--skip", default="", help="comma list of parts to skip: throughput,startup,memory")
    parser.add_argument("--out", default="outputs/benchmark.md")
    parser.add_argument(PLAIN_CHILD, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_loop_child:
        return plain_loop_child(args.plain_loop_child, args)

    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as workdir:  # the runs' checkpoints and logs
        args.workdir = workdir
        run_benchmarks(args)


def run_benchmarks(args: argparse.Namespace) -> None:
    skip = set(filter(None, args.skip.split(",")))
    models = args.models.split(",")
    lines = [
        f"device {args.device}, batch {args.batch_size} x {args.num_steps} steps, {args.optimizer}",
        "",
    ]

    # First, while this process is small: Linux carries the parent's peak RSS into a forked child's
    # ru_maxrss, so children started after the throughput runs would all report this process's peak.
    if "memory" not in skip:
        lines += ["| peak RSS, MB | rnnlab train.py | plain loop | rnnlab / plain |", "|---|---|---|---|"]
        for model in models:
            size = f"model.hidden_size={args.hidden_size or HIDDEN[model]}"
            with tempfile.TemporaryDirectory() as folder:
                ours = peak_rss_mb(
                    [
                        sys.executable,
                        "scripts/train.py",
                        f"model={model}",
                        size,
                        f"optimizer={args.optimizer}",
                        f"data.batch_size={args.batch_size}",
                        f"data.num_steps={args.num_steps}",
                        "trainer.max_epochs=1",
                        f"trainer.limit_train_batches={args.steps}",
                        "trainer.limit_val_batches=2",
                        "test=false",
                        f"hydra.run.dir={folder}/run",
                    ]
                )
            plain = peak_rss_mb(
                [
                    sys.executable,
                    "scripts/benchmark.py",
                    PLAIN_CHILD,
                    model,
                    f"--optimizer={args.optimizer}",
                    f"--batch-size={args.batch_size}",
                    f"--num-steps={args.num_steps}",
                    f"--steps={args.steps}",
                    *([f"--hidden-size={args.hidden_size}"] if args.hidden_size else []),
                ]
            )
            lines.append(f"| {model} | {ours:,.0f} | {plain:,.0f} | {ours / plain:.2f} |")
            print(lines[-1], flush=True)
        lines.append("")

    if "throughput" not in skip:
        lines += [
            "| model | hidden | plain loop tokens/s | rnnlab tokens/s | rnnlab / plain "
            f"| rnnlab, {args.pieces} pieces per batch | / plain | bare Lightning / plain |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for model in models:
            result = throughput(model, args)
            plain, ours, pieces = (f"{result[key]:,.0f}" for key in ("plain", "rnnlab", "pieces"))
            lines.append(
                f"| {model} | {args.hidden_size or HIDDEN[model]} | {plain} | {ours} | {result['ratio']:.3f} "
                f"| {pieces} | {result['ratio_pieces']:.3f} | {result['ratio_bare']:.3f} |"
            )
            print(lines[-1], flush=True)
        scratch, module = scratch_against_module(args)
        hidden = args.hidden_size or HIDDEN["rnn_scratch"]
        lines += [
            "",
            f"scratch RNN against nn.RNN, both hidden {hidden}, plain loop: "
            f"{scratch:,.0f} vs {module:,.0f} tokens/s ({scratch / module:.2f} x)",
            "",
        ]
        print(lines[-2], flush=True)

    if "startup" not in skip:
        compose_s = wall_time([sys.executable, "scripts/train.py", "--cfg", "job"])
        lightning_s = wall_time([sys.executable, "-c", "import lightning"])
        first_step_s = first_step_seconds(args)
        lines += [
            "| start-up | seconds |",
            "|---|---|",
            f"| `train.py --cfg job` | {compose_s:.2f} |",
            f"| `python -c 'import lightning'` | {lightning_s:.2f} |",
            f"| process start to first optimiser step | {first_step_s:.2f} "
            f"({first_step_s / lightning_s:.2f} x import) |",
            "",
        ]
        print("\n".join(lines[-6:]), flush=True)

    if args.batch_sizes:
        from rnnlab.run.build import build

        lines += ["| model | batch | rnnlab tokens/s |", "|---|---|---|"]
        for model in models:
            for batch in map(int, args.batch_sizes.split(",")):
                sized = argparse.Namespace(**{**vars(args), "batch_size": batch, "repeats": 1})
                cfg = compose(model, sized)
                datamodule, task, _ = build(cfg)
                rate = rnnlab_tokens_per_s(cfg, datamodule, task, args.steps, args.warmup)
                lines.append(f"| {model} | {batch} | {rate:,.0f} |")
                print(lines[-1], flush=True)

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
