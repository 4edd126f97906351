"""trainer=ddp through the CLI, two CPU processes (gloo): streams stay continuous in each process, the
run matches a one-process run with the same global batch, and it writes one run directory."""

from __future__ import annotations

import json
import random
import string
import sys
from pathlib import Path

import pytest

from tests.project import DISTRIBUTED_RUN, ROOT, Finished, call, child_environment, run_command, run_dirs

pytestmark = pytest.mark.slow  # CLI subprocesses: `pytest -m "not slow"` leaves them out


STREAM_CHECK = "+callbacks.stream_check._target_=tests.project.StreamCheck"


def train(workdir: Path, corpus: Path, *overrides: str, timeout: float = 300) -> dict:
    """Runs train.py in its own session (a hung rank is killed with the rest at the deadline), with
    this test's HOME and data directory: both ranks cache tokens there."""
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), *DISTRIBUTED_RUN, f"data.path={corpus}"]
    command += [STREAM_CHECK, *overrides]
    env = child_environment(workdir, PYTHONPATH=str(ROOT))  # the ranks import StreamCheck from tests/
    result = run_command(command, cwd=workdir, timeout=timeout, env=env)
    return finished(workdir, result)


def train_here(workdir: Path, corpus: Path, capfd) -> dict:
    """The one-process run the ranks are compared with: train.py's main in this process."""
    result = call("train.py", *DISTRIBUTED_RUN, f"data.path={corpus}", STREAM_CHECK, cwd=workdir, capfd=capfd)
    return finished(workdir, result)


def finished(workdir: Path, result: Finished) -> dict:
    assert result.returncode == 0, result.why(4000)
    (run_dir,) = run_dirs(workdir / "outputs")
    output = result.stdout + result.stderr
    return {**json.loads((run_dir / "metrics.json").read_text()), "run_dir": run_dir, "output": output}


def test_two_processes_keep_their_streams_and_match_one_process(tmp_path: Path, isolated, capfd):
    generator = random.Random(0)
    corpus = tmp_path / "random.txt"
    corpus.write_text("".join(generator.choices(string.ascii_lowercase + " ", k=12000)))
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = train_here(tmp_path / "one", corpus, capfd)
    two = train(tmp_path / "two", corpus, "trainer=ddp")

    # the epoch's metrics are global values (no sync_dist warning), and a run outside SLURM is not
    # told to use srun where an srun program exists
    assert "sync_dist" not in two["output"] and "srun` command" not in two["output"]
    assert two["val_ppl"] == pytest.approx(one["val_ppl"], rel=1e-4)
    assert two["test_ppl"] == pytest.approx(one["test_ppl"], rel=1e-4)
    run_dir = two["run_dir"]  # one run directory: both ranks' logs, one event stream, one set of checkpoints
    assert sorted(p.name for p in run_dir.glob("*.log")) == ["train.log", "train_ddp_process_1.log"]
    writers = {p.name.split(".")[-2] for p in run_dir.glob("events.out.tfevents.*")}
    assert len(writers) == 1  # events.out.tfevents.<time>.<host>.<pid>.<n>: one process wrote them all
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir())[-1] == "last.ckpt"
    assert not [p for p in (tmp_path / "two").rglob("*") if p.is_dir() and p.name == "lightning_logs"]
    cached = [p.name for p in (isolated.data_dir / "cache").iterdir()]
    assert len(cached) == 1 and cached[0].startswith("random-"), cached  # one cache, in this test's data dir
    print(f"1 process: val ppl {one['val_ppl']:.6f}; 2 processes: val ppl {two['val_ppl']:.6f}")
