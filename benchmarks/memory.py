"""Does Lightning + Hydra cost memory? Peak RSS of a short `scripts/train.py` run against the plain loop.

    python benchmarks/memory.py [--models rnn_scratch,rnn,gru,lstm] [--hidden-size N] [--batch-size 32]
                                [--num-steps 35] [--optimizer sgd] [--device cpu|cuda] [--steps 200]
                                [--data-path FILE] [--out outputs/benchmarks/memory.md]

Per model, two child processes train for `--steps` batches: train.py with its default callbacks and
loggers (plus 2 validation batches), and `plain_loop.py`, which never imports lightning or hydra. Each
one's peak resident memory is what `os.wait4` reports for it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from common import ROOT, accelerator, add_run_options, data_overrides, hidden_size, train_command, write_table


def peak_rss_mb(command: list[str]) -> float:
    """Peak resident memory of one child process (os.wait4 reports that child's own usage)."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        sys.exit(f"{' '.join(command)} failed with wait status {status}")
    return usage.ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser)
    parser.add_argument("--out", default="outputs/benchmarks/memory.md")
    args = parser.parse_args(argv)

    # This process must stay small, so it never imports torch: Linux carries the parent's peak RSS
    # into a child's ru_maxrss, and a big parent would hide the children's own peaks.
    lines = [
        f"device {args.device}, batch {args.batch_size} x {args.num_steps} steps, {args.optimizer}, "
        f"{args.steps} steps",
        "",
        "| peak RSS, MB | rnnlab train.py | plain loop | rnnlab / plain |",
        "|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for model in args.models.split(","):
        hidden = hidden_size(model, args.hidden_size)
        with tempfile.TemporaryDirectory() as folder:
            ours = peak_rss_mb(
                train_command(
                    f"{folder}/run",
                    f"model={model}",
                    f"model.hidden_size={hidden}",
                    f"optimizer={args.optimizer}",
                    f"data.batch_size={args.batch_size}",
                    f"data.num_steps={args.num_steps}",
                    *data_overrides(args),
                    f"trainer.accelerator={accelerator(args)}",
                    "trainer.max_epochs=1",
                    f"trainer.limit_train_batches={args.steps}",
                    "trainer.limit_val_batches=2",
                    "test=false",
                )
            )
        plain = peak_rss_mb(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "plain_loop.py"),
                f"--model={model}",
                f"--hidden-size={hidden}",
                f"--batch-size={args.batch_size}",
                f"--num-steps={args.num_steps}",
                f"--steps={args.steps}",
                "--warmup=0",  # only its memory is read here
                f"--optimizer={args.optimizer}",
                f"--device={args.device}",
                *([f"--data-path={args.data_path}"] if args.data_path else []),
            ]
        )
        lines.append(f"| {model} | {ours:,.0f} | {plain:,.0f} | {ours / plain:.2f} |")
        print(lines[-1], flush=True)
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
