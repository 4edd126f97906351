"""Quality against time: train a preset for a wall-time budget; val loss against seconds and characters.

    python benchmarks/quality.py --experiment shakespeare_char_cpu --minutes 2 [--seeds 1,2,3]
           [--val-every 500] [--set data.eval_mode=windowed ...] [--out outputs/benchmarks/quality]

Each seed is one `scripts/train.py` run (`trainer.max_time` is the budget; validation every
`--val-every` optimiser steps, so the curve has points inside epochs). The curve is read back from
the run's TensorBoard events: `val/loss` (nats per character) at each validation, against the
seconds since the process started and the characters trained on so far (optimiser steps x batch
size x window). Writes `<out>.csv` and `<out>.png`, with nanoGPT's published shakespeare_char results
marked as published numbers (not measured here), and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# nanoGPT's README (karpathy/nanoGPT), shakespeare_char: (label, val loss, wall seconds, characters)
PUBLISHED = [
    ("nanoGPT, CPU recipe (published)", 1.88, 180.0, 2000 * 12 * 64),
    ("nanoGPT, baby GPT on an A100 (published)", 1.4697, 180.0, 5000 * 64 * 256),
]


def curve(run_dir: Path, started: float, chars_per_step: int) -> list[dict[str, float]]:
    """(seconds, characters, step, val loss) at each validation of the run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    if "val/loss" not in events.Tags()["scalars"]:
        return []
    return [
        {
            "seconds": round(point.wall_time - started, 2),
            "characters": point.step * chars_per_step,
            "step": point.step,
            "val_loss": round(point.value, 4),
        }
        for point in events.Scalars("val/loss")
    ]


def train(
    experiment: str | None, seed: int, minutes: float, val_every: int, extra: list[str], folder: Path
) -> Path:
    run_dir = folder / f"{experiment or 'default'}-seed{seed}"
    seconds = round(minutes * 60)
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        *([f"experiment={experiment}"] if experiment else []),
        f"seed={seed}",
        f"trainer.max_time=00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}",
        f"trainer.val_check_interval={val_every}",
        "callbacks.progress.style=lines",
        *extra,
        f"hydra.run.dir={run_dir}",
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return run_dir


def chars_per_step(run_dir: Path) -> int:
    import yaml

    data = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["data"]
    return int(data["batch_size"]) * int(data["num_steps"])


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (by_time, by_chars) = pyplot.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for seed in sorted({row["seed"] for row in rows}):
        points = [row for row in rows if row["seed"] == seed]
        label = f"{points[0]['experiment']}, seed {seed}"
        by_time.plot([p["seconds"] for p in points], [p["val_loss"] for p in points], marker=".", label=label)
        by_chars.plot(
            [p["characters"] for p in points], [p["val_loss"] for p in points], marker=".", label=label
        )
    for label, loss, seconds, chars in PUBLISHED:
        by_time.scatter([seconds], [loss], marker="*", s=120, zorder=3)
        by_time.annotate(label, (seconds, loss), textcoords="offset points", xytext=(6, 4), fontsize=7)
        by_chars.scatter([chars], [loss], marker="*", s=120, zorder=3)
        by_chars.annotate(label, (chars, loss), textcoords="offset points", xytext=(6, 4), fontsize=7)
    by_time.set(xlabel="wall-clock seconds since the process started", ylabel="val loss (nats per character)")
    by_chars.set(xlabel="characters trained on", xscale="log")
    by_time.legend(fontsize=7)
    figure.suptitle("tiny-shakespeare, nanoGPT's split: rnnlab measured here; stars: nanoGPT's published")
    figure.tight_layout()
    figure.savefig(out)
    pyplot.close(figure)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default=None, help="an experiment config; default: none")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--val-every", type=int, default=500, help="optimiser steps between validations")
    parser.add_argument("--set", action="append", default=[], help="another train.py override")
    parser.add_argument("--out", default="outputs/benchmarks/quality")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in (int(s) for s in args.seeds.split(",")):
            started = time.time()
            run_dir = train(args.experiment, seed, args.minutes, args.val_every, args.set, Path(folder))
            for point in curve(run_dir, started, chars_per_step(run_dir)):
                rows.append({"experiment": args.experiment or "default", "seed": seed, **point})
    if not rows:
        print("error: no validation inside the budget; lower --val-every or raise --minutes", file=sys.stderr)
        return 2
    with out.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out.with_suffix(".png"))
    print("| experiment | seed | step | seconds | characters | val loss |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['experiment']} | {row['seed']} | {row['step']} | {row['seconds']} | "
            f"{row['characters']:,} | {row['val_loss']} |"
        )
    print(f"written: {out.with_suffix('.csv')}, {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
