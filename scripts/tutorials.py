"""Run the tutorials' experiments and print what rnnlab measured, as the README's table has it.

    python scripts/tutorials.py                      # all but MNIST, about 2 minutes on 2 CPU cores
    python scripts/tutorials.py --mnist              # also the four MNIST experiments (downloads MNIST)
    python scripts/tutorials.py hello_rnn linear_course --out outputs/tutorials

Each experiment runs as `python scripts/train.py experiment=NAME` in its own run directory under
--out; the table is read back from the runs' metrics.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from rnnlab.readback import Unreadable, read_json, reason_of

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = [
    "udacity_sine",
    "rnn_walkthrough",
    "hello_rnncell",
    "hello_rnn",
    "hello_embedding",
    "linear_course",
    "linear_noisy",
    "logistic_course",
    "diabetes_mlp",
]
MNIST = ["mnist_mlp", "mnist_cnn", "mnist_inception", "mnist_resnet"]


def run(experiment: str, out: Path) -> tuple[int, float]:
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), f"experiment={experiment}"]
    command += [f"hydra.run.dir={out / experiment}", "callbacks.progress.style=lines"]
    started = time.perf_counter()
    with open(out / f"{experiment}.console.log", "w") as console:
        status = subprocess.run(command, stdout=console, stderr=subprocess.STDOUT).returncode
    return status, time.perf_counter() - started


def summary(run_dir: Path) -> str:
    """The headline metric on validation and test, and what the lesson itself looks at."""
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.exists():
        return "no metrics.json (see the console log)"
    try:
        return measured(read_json(metrics_file))
    except Unreadable as error:
        return str(error)
    except (KeyError, TypeError, ValueError) as error:  # parses, but not as a run writes it
        return str(Unreadable(metrics_file, f"not a run's metrics ({reason_of(error)})"))


def measured(metrics: dict) -> str:
    if metrics.get("status") != "completed":
        return f"{metrics.get('status')}: {metrics.get('error', '')}"
    name = metrics["monitor"].split("/", 1)[1]
    parts = [f"best val {name} {metrics[f'val_{name}']:.4g}", f"test {name} {metrics[f'test_{name}']:.4g}"]
    if "test_auroc" in metrics:
        parts.append(f"test AUROC {metrics['test_auroc']:.3f}")
    if "weight" in metrics:
        parts.append(f"w = {metrics['weight']:.4f}, b = {metrics['bias']:.4f}")
    if "prediction" in metrics:  # the hello lessons: the decoded prediction of the last validation
        first = metrics["prediction_first_right_epoch"]
        parts.append(f'"{metrics["prediction"]}" at the end' + (f", first at epoch {first}" if first else ""))
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/tutorials.py", description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*", help="default: all but MNIST")
    parser.add_argument("--mnist", action="store_true", help="also the MNIST experiments")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("outputs/tutorials") / time.strftime("%Y-%m-%d_%H-%M-%S"),
        help="where the runs and tutorials.md go (default: outputs/tutorials/DATE_TIME)",
    )
    args = parser.parse_args(argv)
    experiments = args.experiments or TUTORIALS + (MNIST if args.mnist else [])
    args.out.mkdir(parents=True, exist_ok=True)
    rows = ["| experiment | rnnlab measured | wall |", "|---|---|---|"]
    failed = 0
    for experiment in experiments:
        status, seconds = run(experiment, args.out)
        failed += status != 0
        rows.append(f"| `{experiment}` | {summary(args.out / experiment)} | {seconds:.0f} s |")
        print(rows[-1], flush=True)
    table = "\n".join(rows) + "\n"
    (args.out / "tutorials.md").write_text(table)
    print(f"\n{table}\nwritten to {args.out / 'tutorials.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
