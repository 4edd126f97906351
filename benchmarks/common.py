"""What the benchmarks share: their options, a run's config, the plain PyTorch loop, timing and output.

Not a script. torch, hydra and rnnlab are imported inside the functions that need them: `plain_loop.py`
imports this module and must never load lightning or hydra, and `memory.py` must stay a small process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """What is trained: the models, their size, the batches, the optimiser, the device, the corpus."""
    parser.add_argument("--models", default="rnn_scratch,rnn,gru,lstm")
    parser.add_argument("--hidden-size", type=int, default=None, help="default: conf/model/<name>.yaml")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-steps", type=int, default=35)
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=200, help="training steps per measurement")
    add_data_option(parser)


def add_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-path",
        default=None,
        help="a text file to train on (data.path=); default: the timemachine corpus",
    )


def data_overrides(args: argparse.Namespace) -> list[str]:
    return [f"data.path={args.data_path}"] if args.data_path else []


def accelerator(args: argparse.Namespace) -> str:
    return "gpu" if args.device == "cuda" else "cpu"


def compose(overrides: list[str]):
    """The config `scripts/train.py` composes with these overrides (Hydra's compose API, conf/)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def hidden_size(model: str, override: int | None = None) -> int:
    """`--hidden-size` if given, else the model's own size in conf/model/<name>.yaml."""
    return override or compose([f"model={model}"]).model.hidden_size


def run_config(model: str, args: argparse.Namespace, *extra: str):
    """A training run's config for these options; later overrides in `extra` win.

    Each config gets its own output directory under `args.workdir`, so no two runs share
    checkpoints or logs.
    """
    return compose(
        [
            f"model={model}",
            *([f"model.hidden_size={args.hidden_size}"] if args.hidden_size else []),
            f"data.batch_size={args.batch_size}",
            f"data.num_steps={args.num_steps}",
            *data_overrides(args),
            f"optimizer={args.optimizer}",
            f"trainer.accelerator={accelerator(args)}",
            f"paths.output_dir={tempfile.mkdtemp(dir=args.workdir)}",
            *extra,
        ]
    )


def train_command(run_dir: str | Path, *overrides: str) -> list[str]:
    """`scripts/train.py` with these overrides, its run directory in `run_dir` rather than outputs/."""
    return [sys.executable, "scripts/train.py", *overrides, f"hydra.run.dir={run_dir}"]


def first_step_seconds(folder: Path, *overrides: str) -> float:
    """From launching train.py (its run directory in `folder`) to the end of its first optimiser step,
    which the run itself stamps into a file."""
    stamp = folder / "first_step"
    command = train_command(
        folder / "run",
        "trainer.max_steps=1",
        "trainer.num_sanity_val_steps=0",
        "trainer.limit_val_batches=1",
        "test=false",
        *overrides,
        "+callbacks.step_clock._target_=rnnlab.callbacks.throughput.Throughput",
        f"+callbacks.step_clock.first_step_file={stamp}",
    )
    started = time.time()  # wall clock, as the stamp is written by another process
    run_command(command)
    return float(stamp.read_text()) - started


def plain_tokens_per_s(network, batches, optimizer_factory, clip: float, device: str, warmup: int) -> float:
    """The loop a PyTorch user writes by hand: forward, loss, backward, clip, step, carry the state."""
    import torch
    from torch.nn import functional as F

    network.to(device).train()
    optimizer = optimizer_factory(network.parameters())
    state, tokens, started = None, 0, None
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
        # rnnlab.tasks.sequence.detach does this, but importing it loads lightning (see plain_loop.py).
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        tokens += y.numel()
    if started is None:
        raise ValueError(f"{warmup} warm-up steps leave no batch to time; give more steps")
    if device == "cuda":
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - started)


def run_command(command: list[str]) -> None:
    """Run a child process; if it fails, stop with the end of what it printed (not only its status)."""
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def wall_time(command: list[str], repeats: int) -> float:
    """Median seconds from starting the command to its exit."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run_command(command)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def write_table(lines: list[str], out: str) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {out}")
