"""Quality against time: train a preset for a wall-time budget; val loss against seconds and characters.

    python benchmarks/quality.py --experiment shakespeare_char_cpu --minutes 2 [--seeds 1,2,3]
           [--val-every 500] [--set data.eval_mode=windowed ...] [--out outputs/benchmarks/quality]
    python benchmarks/quality.py --runs RUN_DIR [RUN_DIR ...] [--labels A,B,...] [--out ...]   # finished runs

Each seed is one `scripts/train.py` run (`trainer.max_time` is the budget; validation every
`--val-every` optimiser steps, so the curve has points inside epochs). The curve is read back from
the run's TensorBoard events: `val/loss` (nats per character) at each validation, against the
seconds since the process started and the characters trained on so far (optimiser steps x batch
size x window). Writes `<out>.csv` and `<out>.png`, with nanoGPT's published shakespeare_char results
marked as published numbers (not measured here), and prints the table. `--runs` draws runs that have
already finished (a preset's seeds, validated at each epoch's end) instead of training new ones; their
clock starts when Hydra wrote the run's config, before torch was imported.
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

# nanoGPT's CPU recipe run on a 2-core machine of this project's kind (karpathy/nanoGPT, the README's
# command; 2000 iterations, start to end, 2026-12-07: the middle of its three runs, 67.9-74.9 s, in the
# session of docs/tinyshakespeare.md's bf16 table): val loss at its last evaluation, wall seconds, characters
NANOGPT_RUN_HERE = [("nanoGPT, CPU recipe, run on this machine", 1.8857, 72.6, 2000 * 12 * 64)]


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


def run_config(run_dir: Path) -> dict:
    from rnnlab.readback import read_yaml

    return read_yaml(run_dir / ".hydra" / "config.yaml")


def chars_per_step(config: dict) -> int:
    return int(config["data"]["batch_size"]) * int(config["data"]["num_steps"])


def finished_curves(run_dirs: list[Path], labels: list[str] | None = None) -> list[dict]:
    """The curves of finished runs, labelled by their experiment= (default: none), or by `labels` (one
    per run, in order: runs of one experiment with other overrides), and seed."""
    from rnnlab.readback import read_overrides

    rows = []
    for index, run_dir in enumerate(run_dirs):
        config_file = run_dir / ".hydra" / "config.yaml"
        if not config_file.is_file():
            raise FileNotFoundError(f"{run_dir} is not a run folder (no .hydra/config.yaml)")
        config = run_config(run_dir)
        overrides = read_overrides(run_dir / ".hydra" / "overrides.yaml")
        named = [o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")]
        experiment = labels[index] if labels else next(iter(named), "default")
        label = {"experiment": experiment, "seed": config["seed"]}
        points = curve(run_dir, config_file.stat().st_mtime, chars_per_step(config))
        rows += [{**label, **point} for point in points]
    return rows


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (by_time, by_chars) = pyplot.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for experiment, seed in sorted({(row["experiment"], row["seed"]) for row in rows}):
        points = [row for row in rows if (row["experiment"], row["seed"]) == (experiment, seed)]
        label = f"{experiment}, seed {seed}"
        by_time.plot([p["seconds"] for p in points], [p["val_loss"] for p in points], marker=".", label=label)
        by_chars.plot(
            [p["characters"] for p in points], [p["val_loss"] for p in points], marker=".", label=label
        )
    colors = ("gold", "magenta")  # outside matplotlib's line cycle, so no run shares them
    published = [(*point, "*", 160, color) for point, color in zip(PUBLISHED, colors, strict=True)]
    references = [*published, *((*point, "X", 80, "black") for point in NANOGPT_RUN_HERE)]
    for label, loss, seconds, chars, marker, size, color in references:
        by_time.scatter([seconds], [loss], marker=marker, s=size, color=color, zorder=3, label=label)
        by_chars.scatter([chars], [loss], marker=marker, s=size, color=color, zorder=3)
    by_time.set(
        xlabel="wall-clock seconds since the process started",
        ylabel="val loss (nats per character)",
        xscale="log",
    )
    by_chars.set(xlabel="characters trained on", xscale="log")
    by_time.legend(fontsize=7)
    figure.suptitle(
        "tiny-shakespeare on nanoGPT's split: rnnlab measured on this machine;\n"
        "nanoGPT: its published numbers (stars, their own hardware) and its CPU recipe run here (X)"
    )
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
    parser.add_argument("--runs", nargs="+", type=Path, default=None, help="finished run folders to draw")
    parser.add_argument("--labels", default=None, help="with --runs: a comma list of their labels, in order")
    args = parser.parse_args(argv)
    out = Path(args.out)
    labels = args.labels.split(",") if args.labels else None
    if labels and (not args.runs or len(labels) != len(args.runs)):
        print(f"error: --labels names {len(labels)} runs; give one label per --runs folder", file=sys.stderr)
        return 2
    if args.runs:
        try:
            rows = finished_curves(args.runs, labels)
        except FileNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if not rows:
            print("error: the runs hold no val/loss point", file=sys.stderr)
            return 2
        return write(rows, out)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in (int(s) for s in args.seeds.split(",")):
            started = time.time()
            run_dir = train(args.experiment, seed, args.minutes, args.val_every, args.set, Path(folder))
            for point in curve(run_dir, started, chars_per_step(run_config(run_dir))):
                rows.append({"experiment": args.experiment or "default", "seed": seed, **point})
    if not rows:
        print("error: no validation inside the budget; lower --val-every or raise --minutes", file=sys.stderr)
        return 2
    return write(rows, out)


def write(rows: list[dict], out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
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
