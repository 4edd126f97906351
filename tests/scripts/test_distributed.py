"""trainer=ddp through the CLI, two CPU processes (gloo): streams stay continuous in each process, the
run matches a one-process run with the same global batch, and it writes one run directory."""

from __future__ import annotations

import json
import os
import random
import signal
import string
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from tests.project import ROOT
from tests.scripts.test_train import run_dirs

pytestmark = pytest.mark.slow  # CLI subprocesses: `pytest -m "not slow"` leaves them out


class StreamCheck(L.Callback):
    """Fails the run if a process's row i of batch t+1 does not continue its row i of batch t."""

    def on_train_epoch_start(self, trainer, pl_module):
        self.previous_targets = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        inputs, targets = batch
        assert inputs.shape[0] == trainer.datamodule.batch_size // trainer.world_size
        if self.previous_targets is not None:
            # the last target of a row is the next token of its stream, so the next batch's first input
            assert torch.equal(self.previous_targets[:, -1], inputs[:, 0]), (
                f"rank {trainer.global_rank}: stream broken"
            )
        self.previous_targets = targets


def train(workdir: Path, corpus: Path, *overrides: str, timeout: float = 300) -> dict:
    """Runs train.py in its own process group, so a hung rank can be killed with the rest."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RNNLAB_", "HYDRA_"))}
    env["PYTHONPATH"] = str(ROOT)  # the ranks import StreamCheck from this module
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "data=text",
        f"data.path={corpus}",
        "data.batch_size=8",
        "data.eval_batch_size=4",
        "data.num_steps=10",
        "model=gru",
        "model.hidden_size=16",
        "optimizer=sgd",
        "optimizer.lr=0.5",
        "trainer.max_epochs=2",
        "trainer.deterministic=true",
        "seed=5",
        "+callbacks.stream_check._target_=tests.scripts.test_distributed.StreamCheck",
        *overrides,
    ]
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 0, output[-4000:]
    (run_dir,) = run_dirs(workdir / "outputs")
    return {**json.loads((run_dir / "metrics.json").read_text()), "run_dir": run_dir, "output": output}


def test_two_processes_keep_their_streams_and_match_one_process(tmp_path: Path):
    generator = random.Random(0)
    corpus = tmp_path / "random.txt"
    corpus.write_text("".join(generator.choices(string.ascii_lowercase + " ", k=12000)))
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = train(tmp_path / "one", corpus)
    two = train(tmp_path / "two", corpus, "trainer=ddp")

    assert two["val_ppl"] == pytest.approx(one["val_ppl"], rel=1e-4)
    assert two["test_ppl"] == pytest.approx(one["test_ppl"], rel=1e-4)
    run_dir = two["run_dir"]  # one run directory: both ranks' logs, one event stream, one set of checkpoints
    assert sorted(p.name for p in run_dir.glob("*.log")) == ["train.log", "train_ddp_process_1.log"]
    writers = {p.name.split(".")[-2] for p in run_dir.glob("events.out.tfevents.*")}
    assert len(writers) == 1  # events.out.tfevents.<time>.<host>.<pid>.<n>: one process wrote them all
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir())[-1] == "last.ckpt"
    assert not [p for p in (tmp_path / "two").rglob("*") if p.is_dir() and p.name == "lightning_logs"]
    print(f"1 process: val ppl {one['val_ppl']:.6f}; 2 processes: val ppl {two['val_ppl']:.6f}")
