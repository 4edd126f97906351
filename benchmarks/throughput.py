"""Does Lightning + Hydra cost training speed? rnnlab's `Trainer.fit` against a plain PyTorch loop.

    python benchmarks/throughput.py [--models rnn_scratch,rnn,gru,lstm] [--hidden-size N] [--batch-size 32]
                                    [--num-steps 35] [--optimizer sgd] [--device cpu|cuda] [--steps 200]
                                    [--warmup 20] [--repeats 3] [--batch-sizes 32,64,...]
                                    [--windows-per-batch K]
                                    [--data-path FILE] [--out outputs/benchmarks/throughput.md]

Training tokens/s, per model, of
(a) rnnlab at its defaults: `Trainer.fit` on the real task and datamodule, with the configured
    callbacks, loggers and checkpointing (progress bar off); `data.windows_per_batch` windows per
    Lightning batch (or `--windows-per-batch`), each its own optimiser step;
(b) a plain loop over the same network object, windows, optimiser and clipping: one step per window;
(c) a bare LightningModule doing exactly (b)'s step, one window per batch: Lightning's own floor;
(d) rnnlab with one window per Lightning batch (`data.windows_per_batch=1`).
`--steps` and `--warmup` count optimiser steps (windows). In one process, each of (a), (c) and (d) is
timed right next to a run of (b), in alternating order; each ratio is the median of `--repeats` such
pairs.
Then the scratch RNN against nn.RNN of the same size (plain loop), and with `--batch-sizes` rnnlab's
tokens/s per batch size (for GPUs). The corpus is found as train.py finds it, or given by `--data-path`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from common import add_run_options, hidden_size, plain_tokens_per_s, run_config, write_table

from rnnlab.data.text.datamodule import WINDOWS_PER_BATCH


def rnnlab_tokens_per_s(cfg, datamodule, task, steps: int, warmup: int) -> float:
    """One epoch of `steps` batches through Trainer.fit, with the callbacks and loggers of the config."""
    from omegaconf import open_dict

    from rnnlab.callbacks.throughput import Throughput
    from rnnlab.run.build import create, create_callbacks, set_matmul_precision

    clock = Throughput(warmup_steps=warmup)
    quiet = cfg.copy()
    with open_dict(quiet):
        quiet.callbacks.pop("progress", None)
    loggers = [create(logger) for logger in cfg.logger.values()]
    trainer = create(
        set_matmul_precision(cfg.trainer),
        callbacks=[*create_callbacks(quiet, task), clock],
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


def bare_lightning_tokens_per_s(network, loader, optimizer_factory, clip: float, args) -> float:
    """Lightning's own floor: a bare LightningModule doing the plain loop's step, nothing else."""
    import lightning as L
    import torch
    from torch.nn import functional as F

    from rnnlab.callbacks.throughput import Throughput
    from rnnlab.tasks.sequence import detach

    class PlainStep(L.LightningModule):
        throughput_unit = "tokens"  # Throughput asks the module what it counts, as it asks rnnlab's tasks

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

        def items_in(self, batch) -> int:
            return batch[1].numel()

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
    torch.set_grad_enabled(True)  # fit leaves it off, which the plain loop after it would inherit
    return clock.last_rate


def loader_batches(args: argparse.Namespace, k: int, available: int | None = None) -> tuple[int, int]:
    """`--steps` and `--warmup` (optimiser steps, one per window) as loader batches of k windows:
    the batches timed in all (at most `available`) and those left out first (at least one timed)."""
    batches = max(1, args.steps // k)
    if available is not None:
        batches = min(batches, available)
    return batches, min(max(1, args.warmup // k), batches - 1)


def windows_override(args: argparse.Namespace) -> list[str]:
    """`--windows-per-batch K` for rnnlab's own run (a); the default is the config's."""
    return [f"data.windows_per_batch={args.windows_per_batch}"] if args.windows_per_batch else []


def measure(model: str, args: argparse.Namespace) -> dict:
    """Median tokens/s of (a), (d) and (b), and the median ratios of (a), (d) and (c) to (b)."""
    import lightning as L
    from hydra.utils import instantiate

    from rnnlab.run.build import build

    cfg = run_config(model, args, *windows_override(args))
    L.seed_everything(0, verbose=False)
    datamodule, task, _ = build(cfg)
    k = cfg.data.get("windows_per_batch") or WINDOWS_PER_BATCH
    cfg_single = run_config(model, args, "data.windows_per_batch=1")
    datamodule_single, task_single, _ = build(cfg_single)
    loader = datamodule_single.train_dataloader()  # one window per batch, as Trainer.fit's first epoch
    optimizer_factory = instantiate(cfg.optimizer)
    clip = cfg.task.gradient_clip_val

    batches, warmup_batches = loader_batches(args, k)

    def run_plain() -> float:
        batches = (batch for _, batch in zip(range(args.steps), loader, strict=False))
        return plain_tokens_per_s(task.network, batches, optimizer_factory, clip, args.device, args.warmup)

    sides = {
        "ours": lambda: rnnlab_tokens_per_s(cfg, datamodule, task, batches, warmup_batches),
        "single": lambda: rnnlab_tokens_per_s(
            cfg_single, datamodule_single, task_single, args.steps, args.warmup
        ),
        "bare": lambda: bare_lightning_tokens_per_s(task.network, loader, optimizer_factory, clip, args),
    }
    rates: dict[str, list[float]] = {name: [] for name in sides}
    plain_for: dict[str, list[float]] = {name: [] for name in sides}
    for repeat in range(args.repeats):
        # Each side is timed right next to a plain-loop run, in alternating order, so that the
        # machine's drifts in speed (large on a shared VM) fall on both halves of every pair.
        for name, side in sides.items():
            if repeat % 2:
                rates[name].append(side())
                plain_for[name].append(run_plain())
            else:
                plain_for[name].append(run_plain())
                rates[name].append(side())

    def ratio(name: str) -> float:
        return statistics.median(a / b for a, b in zip(rates[name], plain_for[name], strict=True))

    return {
        "hidden": cfg.model.hidden_size,
        "windows": k,
        "plain": statistics.median(plain_for["ours"]),
        "rnnlab": statistics.median(rates["ours"]),
        "ratio": ratio("ours"),
        "single": statistics.median(rates["single"]),
        "ratio_single": ratio("single"),
        "ratio_bare": ratio("bare"),
    }


def scratch_against_module(args: argparse.Namespace) -> tuple[int, float, float]:
    """Plain-loop tokens/s of the scratch RNN and of nn.RNN, both at the scratch RNN's hidden size."""
    from hydra.utils import instantiate

    from rnnlab.run.build import build

    hidden = hidden_size("rnn_scratch", args.hidden_size)
    built = {}
    for model in ("rnn_scratch", "rnn"):
        # one window per loader batch: the plain loop takes one optimiser step per batch
        cfg = run_config(model, args, f"model.hidden_size={hidden}", "data.windows_per_batch=1")
        datamodule, task, _ = build(cfg)
        built[model] = (datamodule, task.network, instantiate(cfg.optimizer))
    rates: dict[str, list[float]] = {model: [] for model in built}
    for _ in range(args.repeats):
        for model, (datamodule, network, optimizer) in built.items():
            batches = (b for _, b in zip(range(args.steps), datamodule.train_dataloader(), strict=False))
            rates[model].append(
                plain_tokens_per_s(network, batches, optimizer, 1.0, args.device, args.warmup)
            )
    return hidden, statistics.median(rates["rnn_scratch"]), statistics.median(rates["rnn"])


def batch_size_cell(model: str, batch: int, args: argparse.Namespace) -> str:
    """rnnlab's tokens/s at this batch size, over `--steps` windows or as many as the corpus holds."""
    from rnnlab.errors import UserError
    from rnnlab.run.build import build

    cfg = run_config(model, args, f"data.batch_size={batch}", *windows_override(args))
    try:  # a batch too large for the corpus is refused with a UserError
        datamodule, task, _ = build(cfg)
        available = len(datamodule.train_dataloader())
    except UserError as error:
        return f"n/a: {error}"
    k = cfg.data.get("windows_per_batch") or WINDOWS_PER_BATCH
    batches, warmup_batches = loader_batches(args, k, available)
    rate = rnnlab_tokens_per_s(cfg, datamodule, task, batches, warmup_batches)
    return f"{rate:,.0f}" + (f" ({batches} loader batches)" if batches < args.steps // k else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser)
    parser.add_argument("--warmup", type=int, default=20, help="steps left out of each measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--batch-sizes", default="", help="e.g. 32,64,128,256,512,1024: tokens/s per batch size"
    )
    parser.add_argument(
        "--windows-per-batch",
        type=int,
        default=None,
        help="data.windows_per_batch of (a); default: the config's",
    )
    parser.add_argument("--out", default="outputs/benchmarks/throughput.md")
    args = parser.parse_args(argv)
    models = args.models.split(",")

    lines = [
        f"device {args.device}, batch {args.batch_size} x {args.num_steps} steps, {args.optimizer}, "
        f"{args.steps} steps after {args.warmup} warm-up, median of {args.repeats}, "
        f"windows per loader batch: {args.windows_per_batch or 'the config default'}",
        "",
        "| model | hidden | plain loop tokens/s | rnnlab tokens/s | rnnlab / plain "
        "| rnnlab, 1 window per batch | / plain | bare Lightning / plain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as workdir:  # the runs' checkpoints and logs
        args.workdir = workdir
        for model in models:
            r = measure(model, args)
            lines.append(
                f"| {model} | {r['hidden']} | {r['plain']:,.0f} | {r['rnnlab']:,.0f} | {r['ratio']:.3f} "
                f"| {r['single']:,.0f} | {r['ratio_single']:.3f} | {r['ratio_bare']:.3f} |"
            )
            print(lines[-1], flush=True)

        hidden, scratch, module = scratch_against_module(args)
        lines += [
            "",
            f"scratch RNN against nn.RNN, both hidden {hidden}, plain loop: "
            f"{scratch:,.0f} vs {module:,.0f} tokens/s ({scratch / module:.2f} x)",
        ]
        print("\n".join(lines[-2:]), flush=True)

        if args.batch_sizes:
            lines += ["", "| model | batch | rnnlab tokens/s |", "|---|---|---|"]
            print("\n".join(lines[-3:]), flush=True)
            for model in models:
                for batch in map(int, args.batch_sizes.split(",")):
                    cell = batch_size_cell(model, batch, args)
                    lines.append(f"| {model} | {batch} | {cell} |")
                    print(lines[-1], flush=True)
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
