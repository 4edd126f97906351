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
from pathlib import Path

from common import (
    accelerator,
    add_data_option,
    data_overrides,
    first_step_seconds,
    wall_time,
    write_table,
)


def median_first_step_seconds(args: argparse.Namespace) -> float:
    """The median of `--repeats` fresh runs of `common.first_step_seconds`."""
    times = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            overrides = [f"trainer.accelerator={accelerator(args)}", *data_overrides(args)]
            times.append(first_step_seconds(Path(folder), *overrides))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3)
    add_data_option(parser)
    parser.add_argument("--out", default="outputs/benchmarks/startup.md")
    args = parser.parse_args(argv)

    compose_s = wall_time([sys.executable, "scripts/train.py", "--cfg", "job"], args.repeats)
    lightning_s = wall_time([sys.executable, "-c", "import lightning"], args.repeats)
    first_step_s = median_first_step_seconds(args)
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
