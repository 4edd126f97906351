"""Corpora of 300 MB and 1 GB: tokenising speed, start-up on a warm cache, memory, DDP.

    python benchmarks/corpus.py [--sizes 300,1000] [--steps 300] [--skip ddp]
                                [--out outputs/benchmarks/corpus.md]

Generated text (The Time Machine repeated, ASCII) goes to a temporary folder that is deleted at
the end; nothing large is written elsewhere. Figures:
- cold tokenisation, MB/s, of `rnnlab.data.text.tokens.encode_file` for raw chars, d2l chars, bytes
  and words (words at the smallest size only: a list of Python strings per word needs about 70 bytes
  a word);
- process start to the first optimiser step of `train.py data=text` on a warm cache, next to the
  same on The Time Machine;
- peak RSS of `train.py` training `--steps` steps on each size from a warm cache (validation
  capped), next to the same run on The Time Machine: what `/usr/bin/time -v` reports as the maximum
  resident set size. A warm run maps the ids and reads only what its batches gather, so it should
  stay near The Time Machine's whatever the corpus (a load that read the memory map whole would add
  the corpus's size, once per mapping). The Time Machine's one epoch ends after about 18 loader
  batches, so with more `--steps` it trains less than the generated corpora do;
- a 2-process `trainer=ddp` run on the smallest size with an empty cache: how many processes built
  the cache, and each one's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, first_step_seconds, train_command, write_table

TIME_MACHINE = ROOT / "src" / "rnnlab" / "data" / "bundled" / "timemachine.txt"


def generate(path: Path, megabytes: int) -> Path:
    chunk = TIME_MACHINE.read_bytes()
    with open(path, "wb") as file:
        for _ in range(megabytes * 1_000_000 // len(chunk) + 1):
            file.write(chunk)
        file.truncate(megabytes * 1_000_000)
    return path


def tokenising_speed(path: Path, preprocess: str, tokens: str) -> float:
    """MB/s of a cold tokenisation, in a fresh process (so one measurement's memory does not linger)."""
    code = (
        "import sys, time; from rnnlab.data.text.tokens import encode_file; t = time.perf_counter(); "
        f"encode_file({str(path)!r}, {preprocess!r}, {tokens!r}); print(time.perf_counter() - t)"
    )
    seconds = float(
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    )
    return path.stat().st_size / 1e6 / seconds


def peak_rss_of_tree(command: list[str], env: dict[str, str]) -> tuple[int, dict[int, float]]:
    """Run a command, sampling the peak RSS (VmHWM) of it and of every process it starts.

    Returns (exit status, {pid: peak MB}).
    """
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    peaks: dict[int, float] = {}

    def descendants(root: int) -> list[int]:
        children = Path(f"/proc/{root}/task/{root}/children")
        found = [int(pid) for pid in children.read_text().split()] if children.exists() else []
        return found + [pid for child in found for pid in descendants(child)]

    def sample() -> None:
        while process.poll() is None:
            for pid in [process.pid, *descendants(process.pid)]:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    cmdline = Path(f"/proc/{pid}/cmdline").read_text()
                except OSError:
                    continue
                match = re.search(r"VmHWM:\s+(\d+) kB", status)
                if match and "train.py" in cmdline:
                    peaks[pid] = max(peaks.get(pid, 0.0), int(match.group(1)) / 1024)
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    status = process.wait()
    watcher.join()
    return status, peaks


def peak_rss(command: list[str], env: dict[str, str]) -> tuple[int, float]:
    """Run a command; its exit status and the peak RSS in MB of it or any process it waited for (the
    kernel's count, as `/usr/bin/time -v` reads it: wait4's ru_maxrss, in KiB on Linux)."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300,1000", help="corpus sizes in MB")
    parser.add_argument("--steps", type=int, default=300, help="training steps of the memory runs")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: speed,startup,memory,ddp")
    parser.add_argument("--out", default="outputs/benchmarks/corpus.md")
    args = parser.parse_args(argv)
    sizes, skip = [int(s) for s in args.sizes.split(",")], set(filter(None, args.skip.split(",")))
    lines = [f"corpora of {', '.join(f'{s} MB' for s in sizes)}: The Time Machine repeated", ""]
    with tempfile.TemporaryDirectory(prefix="rnnlab-corpus-") as folder:
        root = Path(folder)
        corpora = {size: generate(root / f"corpus-{size}mb.txt", size) for size in sizes}
        env = {**os.environ, "RNNLAB_DATA_DIR": str(root / "data")}
        os.environ["RNNLAB_DATA_DIR"] = env["RNNLAB_DATA_DIR"]  # run_command's children, too

        if "speed" not in skip:
            lines += ["| cold tokenisation, MB/s | " + " | ".join(f"{s} MB" for s in sizes) + " |"]
            lines += ["|---|" + "---|" * len(sizes)]
            for preprocess, tokens in (("raw", "char"), ("d2l", "char"), ("raw", "byte"), ("raw", "word")):
                cells = [
                    f"{tokenising_speed(path, preprocess, tokens):.0f}"
                    if tokens != "word" or size == sizes[0]
                    else "not run (memory)"
                    for size, path in corpora.items()
                ]
                lines.append(f"| {tokens} ({preprocess}) | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
            lines.append("")

        big = ["data=text", "data.preprocess=raw", "data.eval_max_tokens=20000", "data.test_max_tokens=20000"]
        if "startup" not in skip:
            lines += ["| process start to first optimiser step | seconds |", "|---|---|"]
            lines.append(f"| The Time Machine | {first_step_seconds(root / 'tm'):.2f} |")
            for size, path in corpora.items():
                first_step_seconds(root / f"warm-{size}", *big, f"data.path={path}")  # builds the cache
                seconds = first_step_seconds(root / f"start-{size}", *big, f"data.path={path}")
                lines.append(f"| {size} MB, warm cache | {seconds:.2f} |")
                print(lines[-1], flush=True)
            lines.append("")

        if "memory" not in skip:
            lines += [f"| peak RSS of train.py, {args.steps} steps, warm cache | MB |", "|---|---|"]
            shape = [
                "trainer.max_epochs=1",
                f"trainer.limit_train_batches={args.steps}",
                "trainer.limit_val_batches=5",
                "test=false",
            ]
            corpus_runs = {"The Time Machine": big[1:]}  # data=timemachine, read the same way
            corpus_runs |= {f"{size} MB": [*big, f"data.path={path}"] for size, path in corpora.items()}
            for name, data in corpus_runs.items():
                slug = name.replace(" ", "-").lower()
                first_step_seconds(root / f"memory-warm-{slug}", *data)  # the cache, if no run built it
                status, peak = peak_rss(train_command(root / f"memory-{slug}", *data, *shape), env)
                lines.append(f"| {name} | {peak:,.0f} |" if not status else f"| {name} | failed |")
                print(lines[-1], flush=True)
            lines.append("")

        if "ddp" not in skip:
            size, path = next(iter(corpora.items()))
            fresh = {**env, "RNNLAB_DATA_DIR": str(root / "ddp-data")}
            run_dir = root / "ddp"
            command = train_command(
                run_dir,
                *big,
                f"data.path={path}",
                "trainer=ddp",
                "trainer.accelerator=cpu",
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=20",
                "trainer.limit_val_batches=2",
                "test=false",
            )
            status, peaks = peak_rss_of_tree(command, fresh)
            logs = "".join(p.read_text() for p in run_dir.glob("*.log"))
            builds = logs.count("tokenising")
            rss = ", ".join(f"{mb:,.0f}" for mb in sorted(peaks.values(), reverse=True))
            lines += [
                f"2-process DDP on {size} MB, empty cache: exit {status}, cache built {builds} time(s), "
                f"peak RSS per process {rss} MB",
            ]
            print(lines[-1], flush=True)
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
