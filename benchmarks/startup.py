"""How long before rnnlab does anything: composing a config, importing lightning, the first training step.

    python benchmarks/startup.py [--device cpu|cuda] [--repeats 3] [--data-path FILE]
                                 [--out outputs/benchmarks/startup.md]

Each figure is the median wall time of `--repeats` fresh processes: `train.py --cfg job` (composition
alone, which imports neither torch nor lightning), `python -c 'import lightning'`, and a real run of
train.py (default model, one optimiser step) from the launch to the end of its first step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import (
    accelerator,
    add_data_option,
    data_overrides,
    run_command,
    train_command,
    wall_time,
    write_table,
)


def first_step_seconds(args: argparse.Namespace) -> float:
    """From launching train.py to the end of its first optimiser step (which the run itself stamps)."""
    times = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            stamp = Path(folder) / "first_step"
            command = train_command(
                f"{folder}/run",
                f"trainer.accelerator={accelerator(args)}",
                "trainer.max_steps=1",
                "trainer.num_sanity_val_steps=0",
                "trainer.limit_val_batches=1",
                "test=false",
                *data_overrides(args),
                "+callbacks.step_clock._target_=rnnlab.callbacks.throughput.Throughput",
                f"+callbacks.step_clock.first_step_file={stamp}",
            )
            started = time.time()  # wall clock, as the stamp is written by another process
            run_command(command)
            times.append(float(stamp.read_text()) - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3)
    add_data_option(parser)
    parser.add_argument("--out", default="outputs/benchmarks/startup.md")
    args = parser.parse_args()

    compose_s = wall_time([sys.executable, "scripts/train.py", "--cfg", "job"], args.repeats)
    lightning_s = wall_time([sys.executable, "-c", "import lightning"], args.repeats)
    first_step_s = first_step_seconds(args)
    lines = [
        f"device {args.device}, median of {args.repeats}",
        "",
        "| start-up | seconds |",
        "|---|---|",
        f"| `train.py --cfg job` | {compose_s:.2f} |",
        f"| `python -c 'import lightning'` | {lightning_s:.2f} |",
        f"| process start to first optimiser step | {first_step_s:.2f} "
        f"({first_step_s / lightning_s:.2f} x import) |",
    ]
    print("\n".join(lines), flush=True)
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
