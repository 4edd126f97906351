"""Do the LSTM presets train on oneDNN's fused RNN on a CPU, and which settings change their speed?

    python benchmarks/cpu_fast_path.py [--presets shakespeare_char_cpu,shakespeare_char,timemachine_best]
                                       [--seconds 3] [--warmup 2] [--weight-dropout 0.2]
                                       [--grid-preset shakespeare_char_cpu] [--batch-sizes 32,64,128,256]
                                       [--windows 64,128,256] [--set KEY=VALUE ...]
                                       [--threads N] [--parts confirm,settings,grid] [--data-path FILE]
                                       [--out outputs/benchmarks/cpu_fast_path.md]

1. oneDNN: each preset (without and with weight dropout) trains one loader batch and validates one
   batch through `Trainer.fit` in a child process run with `ONEDNN_VERBOSE=2`. oneDNN then prints a
   line for every primitive it creates and runs; the child counts the recurrent layers torch was asked
   to run (a forward hook on each nn.LSTM / nn.GRU / nn.RNN, times its layers and directions). The
   preset is on the fast path when every training layer call ran oneDNN's `rnn` primitive as
   `forward_training` and again as `backward`, and every evaluation call as `forward_inference`.
   The preset with weight dropout also runs under `trainer.precision=bf16-mixed` (autocast to
   bfloat16), and the table names the implementation oneDNN ran for each propagation kind (`ref`:
   its GEMM-based RNN; `brgemm:<isa>`: its brgemm kernels for that instruction set).
2. Levers: training tokens/s of each preset's network, optimiser and clipping in a plain loop (the
   step rnnlab's task takes, without Lightning around it: `benchmarks/throughput.py` measures that),
   as configured, then with one setting changed: weight dropout on (or off, where the preset has it),
   two window lengths in turn (shapes not fixed), one intra-op thread instead of torch's default,
   bf16 autocast (what `trainer.precision=bf16-mixed` wraps the forward in; float32 for a preset
   that is configured with bf16); and
   denormals flushed (`torch.set_flush_denormal(True)`), which only holds for every thread when set
   before the first parallel region: two fresh processes, flushed and not, against each other.
3. tokens/s of `--grid-preset` per batch size and window (data.batch_size x data.num_steps).

Each measurement trains for `--seconds` after `--warmup` steps: short, so the numbers carry the noise of
the machine (run it on an idle one). `--set` adds overrides to every run (the smoke test makes the
models tiny with it). `--threads` sets torch's intra-op threads for the whole run; `--parts` picks
the tables. `--data-path` trains every preset on that file instead of its own corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from itertools import cycle

from common import ROOT, compose, data_overrides, write_table

PRESETS = "shakespeare_char_cpu,shakespeare_char,timemachine_best"
PROBE_MARK = "rnnlab-probe "  # the child's one line of counts on stdout, among oneDNN's lines
KINDS = ("forward_training", "backward", "forward_inference")  # oneDNN's propagation kinds


# -- 1. is oneDNN's RNN primitive used? --------------------------------------------------------------
@dataclass
class Confirmation:
    """What one child saw: torch's recurrent layer calls and oneDNN's rnn primitive runs."""

    train_calls: int  # recurrent layer calls with gradients on (training)
    eval_calls: int  # without gradients (validation, the sample)
    runs: Counter  # oneDNN rnn executions per propagation kind
    implementations: dict[str, set[str]]  # per propagation kind, the kernels oneDNN ran (`ref`, ...)
    built: int  # rnn primitives created (cache misses): one per new shape and kind
    build_ms: float  # their total creation time

    @property
    def forward(self) -> bool:
        return self.train_calls > 0 and self.runs["forward_training"] == self.train_calls

    @property
    def backward(self) -> bool:
        return self.train_calls > 0 and self.runs["backward"] == self.train_calls

    def implementation(self, kind: str) -> str:
        return ", ".join(sorted(self.implementations.get(kind, ()))) or "-"

    @property
    def inference(self) -> bool:
        return self.eval_calls > 0 and self.runs["forward_inference"] == self.eval_calls


def read_verbose(stdout: str) -> tuple[Counter, dict[str, set[str]], int, float]:
    """oneDNN's `rnn` primitive lines (ONEDNN_VERBOSE=2): executions per propagation kind, the
    implementations that ran each kind, and how many were created and in how many milliseconds. A line reads
    `onednn_verbose,v1,primitive,exec,cpu,rnn,<impl>,<prop kind>,...,<ms>`; the algorithm
    (vanilla_lstm, lbr_gru, vanilla_gru, vanilla_rnn) follows further on."""
    runs: Counter = Counter()
    implementations: dict[str, set[str]] = {}
    built, build_ms = 0, 0.0
    for line in stdout.splitlines():
        fields = line.split(",")
        if len(fields) < 8 or fields[0] != "onednn_verbose" or fields[5] != "rnn":
            continue
        if fields[3] == "exec":
            runs[fields[7]] += 1
            implementations.setdefault(fields[7], set()).add(fields[6])
        elif fields[3] == "create:cache_miss":
            built += 1
            build_ms += float(fields[-1])
    return runs, implementations, built, build_ms


def confirm(preset: str, weight_dropout: float, precision: str, args: argparse.Namespace) -> Confirmation:
    """Train one loader batch and validate one batch of `preset` in a child with ONEDNN_VERBOSE=2."""
    command = [sys.executable, __file__, "--probe", preset, f"--weight-dropout={weight_dropout}"]
    command += [f"--set=trainer.precision={precision}"]
    command += [f"--set={s}" for s in args.set] + [f"--workdir={args.workdir}"]
    command += [f"--data-path={args.data_path}"] if args.data_path else []
    env = {**os.environ, "ONEDNN_VERBOSE": "2", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    marks = [line for line in result.stdout.splitlines() if line.startswith(PROBE_MARK)]
    if result.returncode or not marks:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    calls = json.loads(marks[-1][len(PROBE_MARK) :])
    return Confirmation(calls["train"], calls["eval"], *read_verbose(result.stdout))


def probe(args: argparse.Namespace) -> None:
    """The child of `confirm`: count torch's recurrent layer calls while Trainer.fit runs."""
    import torch
    from torch import nn

    from rnnlab.run.build import build

    cfg = preset_config(
        args.probe,
        args,
        f"model.weight_dropout={args.weight_dropout}",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0",
    )
    datamodule, task, trainer = build(cfg)
    calls = Counter()

    def count(module: nn.RNNBase, inputs, outputs) -> None:
        layers = module.num_layers * (2 if module.bidirectional else 1)
        calls["train" if torch.is_grad_enabled() else "eval"] += layers

    for module in task.network.modules():
        if isinstance(module, nn.RNNBase):
            module.register_forward_hook(count)
    trainer.fit(task, datamodule=datamodule)
    print(PROBE_MARK + json.dumps({"train": calls["train"], "eval": calls["eval"]}), flush=True)


def preset_config(preset: str, args: argparse.Namespace, *extra: str):
    """The preset's training config, its outputs in a folder of their own under `args.workdir`."""
    return compose(
        [
            f"experiment={preset}",
            *data_overrides(args),
            f"paths.output_dir={tempfile.mkdtemp(dir=args.workdir)}",
            *args.set,
            *extra,
        ]
    )


# -- 2. and 3. training tokens/s ------------------------------------------------------------------
@dataclass
class Setting:
    """How one measurement differs from the preset as configured."""

    name: str
    weight_dropout: float | None = None  # None: the preset's
    threads: int | None = None  # None: torch's default
    two_lengths: bool = False  # every other step one token shorter: two shapes in turn
    bf16: bool | None = None  # the forward and the loss under CPU autocast to bfloat16, as
    # trainer.precision=bf16-mixed runs them; None: as the preset's precision says


class PresetLoop:
    """A preset's network, optimiser, clipping and training windows, ready to time."""

    def __init__(self, preset: str, args: argparse.Namespace, *extra: str) -> None:
        from hydra.utils import instantiate

        from rnnlab.run.build import build

        cfg = preset_config(preset, args, "data.windows_per_batch=1", *extra)
        datamodule, task, _ = build(cfg)
        self.network, self.clip = task.network, cfg.task.gradient_clip_val
        self.make_optimizer = instantiate(cfg.optimizer)
        self.preset_dropout = float(cfg.model.get("weight_dropout") or 0.0)
        self.preset_bf16 = str(cfg.trainer.get("precision")).startswith("bf16")
        # the first windows of an epoch, gathered once, so that the loop times training only
        loader = datamodule.train_dataloader()
        self.windows = [batch for _, batch in zip(range(32), loader, strict=False)]

    def tokens_per_s(self, setting: Setting, seconds: float, warmup: int) -> float:
        import torch
        from torch.nn import functional as F

        from rnnlab.models.regularisation import run_with_penalty
        from rnnlab.tasks.sequence import detach

        threads = torch.get_num_threads()
        if setting.threads:
            torch.set_num_threads(setting.threads)
        self.network.weight_dropout = (
            self.preset_dropout if setting.weight_dropout is None else setting.weight_dropout
        )
        bf16 = self.preset_bf16 if setting.bf16 is None else setting.bf16
        network = self.network.train()
        optimizer = self.make_optimizer(network.parameters())
        state, tokens, started = None, 0, None
        try:
            for step, (x, y) in enumerate(cycle(self.windows)):
                if step == warmup:
                    started, tokens = time.perf_counter(), 0
                elif started is not None and time.perf_counter() - started >= seconds:
                    break
                if setting.two_lengths and step % 2:
                    x, y = x[:, :-1], y[:, :-1]
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    outputs, state, penalty = run_with_penalty(network, x, state)
                    loss = F.cross_entropy(outputs.flatten(0, 1), y.flatten())
                optimizer.zero_grad(set_to_none=True)
                (loss if penalty is None else loss + penalty).backward()
                if self.clip:
                    torch.nn.utils.clip_grad_norm_(network.parameters(), self.clip)
                optimizer.step()
                state = detach(state)  # an LSTM's (h, c), or that with a token shift's last input
                tokens += y.numel()
        finally:
            torch.set_num_threads(threads)
        return tokens / (time.perf_counter() - started)


RATE_MARK = "rnnlab-rate "


def rate_in_child(preset: str, flush_denormal: bool, args: argparse.Namespace) -> float:
    """tokens/s of the preset as configured, in a fresh process that flushes denormals from its start
    or not. `torch.set_flush_denormal` sets the calling thread's flags only: called once the intra-op
    threads exist, it leaves them computing with denormals, so it cannot be switched within a process."""
    command = [sys.executable, __file__, "--measure", preset, f"--seconds={args.seconds}"]
    command += [f"--threads={args.threads}"] if args.threads else []
    command += [f"--warmup={args.warmup}", f"--workdir={args.workdir}", *(f"--set={s}" for s in args.set)]
    command += [f"--data-path={args.data_path}"] if args.data_path else []
    command += ["--flush-denormal"] if flush_denormal else []
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    marks = [line for line in result.stdout.splitlines() if line.startswith(RATE_MARK)]
    if result.returncode or not marks:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return float(marks[-1][len(RATE_MARK) :])


def measure(args: argparse.Namespace) -> None:
    """The child of `rate_in_child`."""
    import torch

    if args.flush_denormal:
        torch.set_flush_denormal(True)  # before any parallel region starts the intra-op threads
    rate = PresetLoop(args.measure, args).tokens_per_s(Setting("child"), args.seconds, args.warmup)
    print(f"{RATE_MARK}{rate}", flush=True)


def settings(preset_dropout: float, preset_bf16: bool, args: argparse.Namespace) -> list[Setting]:
    import torch

    one_thread = 1 if torch.get_num_threads() > 1 else 2
    dropout = (
        Setting("weight dropout off", weight_dropout=0.0)
        if preset_dropout
        else Setting(f"weight dropout {args.weight_dropout}", weight_dropout=args.weight_dropout)
    )
    return [
        Setting("as configured"),
        dropout,
        Setting("two window lengths in turn", two_lengths=True),
        Setting(f"{one_thread} intra-op thread(s)", threads=one_thread),
        Setting("float32", bf16=False) if preset_bf16 else Setting("bf16 autocast", bf16=True),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=PRESETS)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed training per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of each measurement")
    parser.add_argument("--weight-dropout", type=float, default=0.2, help="for presets without it")
    parser.add_argument("--grid-preset", default="shakespeare_char_cpu")
    parser.add_argument("--batch-sizes", default="32,64,128,256")
    parser.add_argument("--windows", default="64,128,256")
    parser.add_argument("--set", action="append", default=[], help="an override for every run")
    parser.add_argument("--data-path", default=None, help="a text file every preset trains on")
    parser.add_argument("--parts", default="confirm,settings,grid", help="which tables to print")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads; default: torch's")
    parser.add_argument("--out", default="outputs/benchmarks/cpu_fast_path.md")
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # the child of `confirm`
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # the child of `rate_in_child`
    parser.add_argument("--flush-denormal", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe:
        probe(args)
        return
    if args.measure:
        measure(args)
        return
    parts = set(args.parts.split(","))

    presets = args.presets.split(",")
    lines = [
        f"torch {torch.__version__}, oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}, "
        f"{torch.get_num_threads()} intra-op threads, {os.cpu_count()} CPUs"
        + (f", corpus {args.data_path}" if args.data_path else "")
        + (f", overrides {' '.join(args.set)}" if args.set else ""),
    ]
    if "confirm" in parts:
        lines += [
            "",
            "| preset | weight dropout | precision | layer calls (train / eval) | oneDNN forward_training "
            "| oneDNN backward | oneDNN forward_inference | fast path fwd / bwd "
            "| oneDNN implementation (training / backward / inference) | rnn primitives built (ms) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as workdir:
        args.workdir = workdir
        loops = {}
        for preset in presets:
            own = float(preset_config(preset, args).model.get("weight_dropout") or 0.0)
            if "settings" in parts:
                loops[preset] = PresetLoop(preset, args)
            dropped = own or args.weight_dropout
            cases = [(0.0, "32-true"), (dropped, "32-true"), (dropped, "bf16-mixed")]
            for p, precision in cases if "confirm" in parts else ():
                c = confirm(preset, p, precision, args)
                lines.append(
                    f"| {preset} | {p:g} | {precision} | {c.train_calls} / {c.eval_calls} "
                    f"| {c.runs['forward_training']} | {c.runs['backward']} | {c.runs['forward_inference']} "
                    f"| {'yes' if c.forward else 'NO'} / {'yes' if c.backward else 'NO'} "
                    f"| {' / '.join(map(c.implementation, KINDS))} | {c.built} ({c.build_ms:.1f}) |"
                )
                print(lines[-1], flush=True)
        lines += [
            "",
            f"training tokens/s, plain loop, {args.seconds:g} s after {args.warmup} warm-up steps each",
            "",
            "| preset | setting | tokens/s | / as configured |",
            "|---|---|---|---|",
        ]
        print("\n".join(lines[-5:]), flush=True)
        for preset, loop in loops.items():  # empty unless "settings" in parts
            base = None
            for setting in settings(loop.preset_dropout, loop.preset_bf16, args):
                rate = loop.tokens_per_s(setting, args.seconds, args.warmup)
                base = base or rate
                lines.append(f"| {preset} | {setting.name} | {rate:,.0f} | {rate / base:.2f} |")
                print(lines[-1], flush=True)
            plain, flushed = (rate_in_child(preset, flush, args) for flush in (False, True))
            lines.append(
                f"| {preset} | denormals flushed (fresh processes: {flushed:,.0f} vs {plain:,.0f} not) "
                f"| {flushed:,.0f} | {flushed / plain:.2f} |"
            )
            print(lines[-1], flush=True)
        del loops
        if "grid" not in parts:
            write_table(lines, args.out)
            return

        windows = [int(w) for w in args.windows.split(",")]
        lines += [
            "",
            f"{args.grid_preset}: training tokens/s by batch size (rows) and window (columns)",
            "",
            "| batch | " + " | ".join(f"window {w}" for w in windows) + " |",
            "|---|" + "---|" * len(windows),
        ]
        print("\n".join(lines[-5:]), flush=True)
        for batch in map(int, args.batch_sizes.split(",")):
            cells = []
            for window in windows:
                loop = PresetLoop(
                    args.grid_preset, args, f"data.batch_size={batch}", f"data.num_steps={window}"
                )
                cells.append(f"{loop.tokens_per_s(Setting('grid'), args.seconds, args.warmup):,.0f}")
            lines.append(f"| {batch} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
