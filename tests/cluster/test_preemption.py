"""Preemption on a live SLURM cluster loses no step: a job told to stop in the middle of an epoch saves
at the end of the batch in hand, is requeued, goes on from that checkpoint in its own folder, and ends
bit for bit where an uninterrupted run with the same seed and threads ends.

Under the submitit launcher (`hydra/launcher=slurm`) the signal is USR2 and submitit requeues; under
`sbatch cluster/train.sbatch`, SIGTERM (`scontrol requeue`, what a preemption sends) and USR1 (what
SLURM sends before the time limit) with rnnlab requeueing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from tests.cluster.conftest import Cluster, stop_child
from tests.project import ROOT, TINY, Child, start, wait_until, write_repetitive_corpus

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm_cluster")]

# 449 optimiser steps an epoch, 3 epochs; last.ckpt every 37 steps shows where the job is. Signalled
# once it shows step 600 or later: inside epoch 2, several hundred steps before the end.
RUN = [
    *TINY,
    "data.max_tokens=20000",
    "trainer.max_epochs=3",
    "trainer.deterministic=true",
    "seed=3",
    "callbacks.mid_epoch_checkpoint.train_time_interval=null",
    "callbacks.mid_epoch_checkpoint.every_n_train_steps=37",
]
SIGNAL_AFTER_STEP = 600
STEPS_PER_EPOCH = 449


def checkpoint_step(path: Path) -> int | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["global_step"]
    except (OSError, RuntimeError, EOFError, KeyError):
        return None


def last_checkpoint_at_or_after(pattern: str, root: Path, step: int):
    """A condition: some run folder matching `pattern` under `root` has a last.ckpt at `step` or later."""

    def holds() -> bool:
        return any((checkpoint_step(p) or 0) >= step for p in root.glob(f"{pattern}/checkpoints/last.ckpt"))

    return holds


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def weights(path: str | Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_repetitive_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


def user_folder(work: Path) -> Path:
    """A folder laid out like the repository's (scripts/, conf/), as a user submits from."""
    work.mkdir()
    for name in ("scripts", "conf"):
        (work / name).symlink_to(ROOT / name)
    return work


def uninterrupted(corpus: Path, work: Path) -> Child:
    """The same run, never stopped, outside SLURM (started now, waited for by the caller)."""
    return start("train.py", *RUN, f"data.path={corpus}", f"hydra.run.dir={work / 'straight'}", cwd=work)


def check_stopped_and_resumed(run_dir: Path, straight: Path, signalled_after: int) -> dict:
    """The run saved interrupted.ckpt at a batch end after the signal, resumed from exactly that step,
    and ended as the uninterrupted run did. Returns what the transcript shows."""
    saved = checkpoint_step(run_dir / "checkpoints" / "interrupted.ckpt")
    log = (run_dir / "train.log").read_text()
    stopped = re.search(r"interrupted at epoch (\d+), step (\d+)", log)
    assert stopped and saved is not None, log[-3000:]
    epoch, step = int(stopped.group(1)), int(stopped.group(2))
    assert step == saved >= signalled_after and step % STEPS_PER_EPOCH, (epoch, step, saved)  # mid-epoch
    after = metrics(run_dir)
    (resumed,) = after["resumes"]
    assert resumed["checkpoint"] == "interrupted.ckpt" and resumed["step"] == saved, resumed
    assert f"from interrupted.ckpt (step {saved})" in log
    assert "SLURM auto-requeueing enabled" not in log  # Lightning's requeue is off: one mechanism
    assert after["status"] == "completed"
    before = metrics(straight)
    for key in ("val_ppl", "test_ppl", "train_ppl", "steps", "epochs"):
        assert after[key] == before[key], (key, after[key], before[key])
    final, reference = weights(after["best_checkpoint"]), weights(before["best_checkpoint"])
    assert final.keys() == reference.keys() and all(torch.equal(final[k], reference[k]) for k in final)
    transcript = {
        "last.ckpt step when signalled": signalled_after,
        "interrupted.ckpt step": saved,
        "resumed from": f"{resumed['checkpoint']} step {resumed['step']}",
        "test ppl": after["test_ppl"],
        "uninterrupted test ppl": before["test_ppl"],
    }
    print(transcript)
    return transcript


@pytest.mark.parametrize(("case", "timeout_min"), [("preempted", 60), ("timed-out", 10)])
def test_a_submitit_job_signalled_mid_epoch_is_requeued_and_resumes_from_that_step(
    on_cluster: Cluster, corpus, tmp_path, case, timeout_min
):
    """submitit counts a USR2 in the last 10 minutes of a job's time (all of a 10-minute job) as a time
    limit, requeued only while `max_num_timeout` (10 in hydra/launcher=slurm; submitit's default 0)
    allows; earlier, as a preemption."""
    work = user_folder(tmp_path / "work")
    sweep = work / "sweep"
    submitter = start(
        "train.py",
        "-m",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=debug",
        f"hydra.launcher.timeout_min={timeout_min}",
        f"hydra.sweep.dir={sweep}",
        *RUN,
        f"data.path={corpus}",
        cwd=work,
    )
    straight = uninterrupted(corpus, work)
    try:
        wait_until(
            last_checkpoint_at_or_after("*", sweep, SIGNAL_AFTER_STEP),
            timeout=300,
            child=submitter,
            what=f"the job's last.ckpt at step {SIGNAL_AFTER_STEP}",
        )
        (run_dir,) = [p.parents[1] for p in sweep.glob("*/checkpoints/last.ckpt")]
        signalled_after = checkpoint_step(run_dir / "checkpoints" / "last.ckpt")
        (job,) = [p.name for p in (sweep / ".submitit").iterdir() if p.is_dir()]
        on_cluster.command("scancel", "-s", "USR2", job)
        assert submitter.process.wait(timeout=300) == 0, submitter.describe()
        assert straight.process.wait(timeout=300) == 0, straight.describe()
    finally:
        stop_child(submitter)
        stop_child(straight)
    job_log = next((sweep / ".submitit" / job).glob("*_log.err")).read_text()
    assert re.search(f"Caught signal SIGUSR2 on .*: this job is {case}", job_log), job_log[-3000:]
    check_stopped_and_resumed(run_dir, work / "straight", signalled_after)


@pytest.mark.parametrize("stop", ["scontrol requeue", "scancel -s USR1"])
def test_an_sbatch_job_told_to_stop_mid_epoch_is_requeued_and_resumes_from_that_step(
    on_cluster: Cluster, corpus, tmp_path, monkeypatch, stop
):
    work = user_folder(tmp_path / "work")
    monkeypatch.setenv(
        "RNNLAB_OUTPUT_DIR", "outputs"
    )  # runs go where a user's would: outputs/ in the job's folder
    sbatch = ["sbatch", "--parsable", f"--chdir={work}", str(ROOT / "cluster" / "train.sbatch")]
    job = on_cluster.command(*sbatch, *RUN, f"data.path={corpus}").strip()
    straight = uninterrupted(corpus, work)
    try:
        on_cluster.wait_for(
            last_checkpoint_at_or_after("outputs/slurm-*", work, SIGNAL_AFTER_STEP),
            job,
            timeout=300,
            what=f"its last.ckpt at step {SIGNAL_AFTER_STEP}",
            output=work / f"slurm-{job}.out",
        )
        run_dir = work / "outputs" / f"slurm-{job}.0"
        signalled_after = checkpoint_step(run_dir / "checkpoints" / "last.ckpt")
        command, *options = stop.split()
        on_cluster.command(command, *options, job)
        on_cluster.wait_until_done(job, timeout=300)
        assert straight.process.wait(timeout=300) == 0, straight.describe()
    finally:
        stop_child(straight)
    output = (work / f"slurm-{job}.out").read_text()
    assert sorted(p.name for p in (work / "outputs").iterdir()) == [f"slurm-{job}.0"], output[-3000:]
    check_stopped_and_resumed(run_dir, work / "straight", signalled_after)
