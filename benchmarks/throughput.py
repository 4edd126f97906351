"""Does Lightning + Hydra cost training speed? rnnlab's `Trainer.fit` against a plain PyTorch loop.

    python benchmarks/throughput.py [--models rnn_scratch,rnn,gru,lstm] [--hidden-size N] [--batch-size 32]
                                    [--num-steps 35] [--optimizer sgd] [--device cpu|cuda] [--steps 200]
                                    [--warmup 20] [--repeats 3] [--pieces 4] [--batch-sizes 32,64,...]
                                    [--data-path FILE] [--out outputs/benchmarks/throughput.md]

Training tokens/s, per model, of
(a) rnnlab: `Trainer.fit` on the real task and datamodule, with the configured callbacks, loggers and
    checkpointing (progress bar off);
(b) a plain loop over the same network object, batches, optimiser and clipping;
(c) a bare LightningModule doing exactly (b)'s step: Lightning's own floor;
(d) rnnlab with `--pieces` K pieces per batch (`data.num_steps=K x num_steps task.tbptt_steps=num_steps`:
    the same optimiser steps in K times fewer Lightning batches).
They alternate in one process after `--warmup` steps; each ratio is the median of `--repeats` pairs.
Then the scratch RNN against nn.RNN of the same size (plain loop), and with `--batch-sizes` rnnlab's
tokens/s per batch size (for GPUs). The corpus is found as train.py finds it, or given by `--data-path`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from common import add_run_options, hidden_size, plain_tokens_per_s, run_config, write_table


def rnnlab_tokens_per_s(cfg, datamodule, task, steps: int, warmup: int) -> float:
    """One epoch of `steps` batches through Trainer.fit, with the callbacks and loggers of the config."""
    from omegaconf import open_dict

    from rnnlab.callbacks.throughput import Throughput
    from rnnlab.run.build import create, create_callbacks

    clock = Throughput(warmup_steps=warmup)
    quiet = cfg.copy()
    with open_dict(quiet):
        quiet.callbacks.pop("progress", None)
    loggers = [create(logger) for logger in cfg.logger.values()]
    trainer = create(
        cfg.trainer,
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


def measure(model: str, args: argparse.Namespace) -> dict:
    """Median tokens/s of (a), (d) and (b), and the median ratios of (a), (d) and (c) to (b)."""
    import lightning as L
    from hydra.utils import instantiate

    from rnnlab.run.build import build

    cfg = run_config(model, args)
    L.seed_everything(0, verbose=False)
    datamodule, task, _ = build(cfg)
    loader = datamodule.train_dataloader()  # the same sampler, seed and epoch as Trainer.fit's first epoch
    optimizer_factory = instantiate(cfg.optimizer)
    k = args.pieces
    cfg_pieces = run_config(
        model, args, f"data.num_steps={k * args.num_steps}", f"task.tbptt_steps={args.num_steps}"
    )
    datamodule_pieces, task_pieces, _ = build(cfg_pieces)
    clip = cfg.task.gradient_clip_val
    ours, pieces, bare, plain = [], [], [], []
    for _ in range(args.repeats):  # alternate, so drifts in machine speed hit every side alike
        ours.append(rnnlab_tokens_per_s(cfg, datamodule, task, args.steps, args.warmup))
        pieces.append(
            rnnlab_tokens_per_s(
                cfg_pieces, datamodule_pieces, task_pieces, args.steps // k, max(1, args.warmup // k)
            )
        )
        bare.append(bare_lightning_tokens_per_s(task.network, loader, optimizer_factory, clip, args))
        batches = (batch for _, batch in zip(range(args.steps), loader, strict=False))
        plain.append(
            plain_tokens_per_s(task.network, batches, optimizer_factory, clip, args.device, args.warmup)
        )

    def ratio(rates: list[float]) -> float:
        return statistics.median(a / b for a, b in zip(rates, plain, strict=True))

    return {
        "hidden": cfg.model.hidden_size,
        "plain": statistics.median(plain),
        "rnnlab": statistics.median(ours),
        "ratio": ratio(ours),
        "pieces": statistics.median(pieces),
        "ratio_pieces": ratio(pieces),
        "ratio_bare": ratio(bare),
    }


def scratch_against_module(args: argparse.Namespace) -> tuple[int, float, float]:
    """Plain-loop tokens/s of the scratch RNN and of nn.RNN, both at the scratch RNN's hidden size."""
    from hydra.utils import instantiate

    from rnnlab.run.build import build

    hidden = hidden_size("rnn_scratch", args.hidden_size)
    built = {}
    for model in ("rnn_scratch", "rnn"):
        cfg = run_config(model, args, f"model.hidden_size={hidden}")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser)
    parser.add_argument("--warmup", type=int, default=20, help="steps left out of each measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pieces", type=int, default=4, help="K pieces of num_steps per Lightning batch")
    parser.add_argument(
        "--batch-sizes", default="", help="e.g. 32,64,128,256,512,1024: tokens/s per batch size"
    )
    parser.add_argument("--out", default="outputs/benchmarks/throughput.md")
    args = parser.parse_args()
    models = args.models.split(",")

    lines = [
        f"device {args.device}, batch {args.batch_size} x {args.num_steps} steps, {args.optimizer}, "
        f"{args.steps} steps after {args.warmup} warm-up, median of {args.repeats}",
        "",
        "| model | hidden | plain loop tokens/s | rnnlab tokens/s | rnnlab / plain "
        f"| rnnlab, {args.pieces} pieces per batch | / plain | bare Lightning / plain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as workdir:  # the runs' checkpoints and logs
        args.workdir = workdir
        for model in models:
            r = measure(model, args)
            lines.append(
                f"| {model} | {r['hidden']} | {r['plain']:,.0f} | {r['rnnlab']:,.0f} | {r['ratio']:.3f} "
                f"| {r['pieces']:,.0f} | {r['ratio_pieces']:.3f} | {r['ratio_bare']:.3f} |"
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
            from rnnlab.run.build import build

            lines += ["", "| model | batch | rnnlab tokens/s |", "|---|---|---|"]
            print("\n".join(lines[-3:]), flush=True)
            for model in models:
                for batch in map(int, args.batch_sizes.split(",")):
                    cfg = run_config(model, args, f"data.batch_size={batch}")
                    datamodule, task, _ = build(cfg)
                    rate = rnnlab_tokens_per_s(cfg, datamodule, task, args.steps, args.warmup)
                    lines.append(f"| {model} | {batch} | {rate:,.0f} |")
                    print(lines[-1], flush=True)
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
