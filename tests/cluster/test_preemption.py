"""Preemption on a live SLURM cluster loses no step: a job told to stop in the middle of an epoch saves
at the end of the batch in hand, is requeued, goes on from that checkpoint in its own folder, and ends
bit for bit where an uninterrupted run with the same seed and threads ends.

Under the submitit launcher (`hydra/launcher=slurm`) the signal is USR2 and submitit requeues; under
`sbatch cluster/train.sbatch`, USR1 (what SLURM sends before the time limit; rnnlab requeues) and
SIGTERM (`scontrol requeue`, as a preemption sends it; SLURM requeues), one after the other in one job."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from tests.cluster.conftest import Cluster, stop_child
from tests.project import ROOT, TINY, run, start, wait_until, write_repetitive_corpus

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm_cluster")]

# 449 optimiser steps an epoch, 3 epochs; last.ckpt every 37 steps shows where a job is. Signalled once
# it shows one of these steps or a later one: inside an epoch, several hundred steps before the end.
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
SIGNAL_AFTER_STEPS = (300, 750)  # the sbatch job is stopped twice
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


@pytest.fixture(scope="module")
def straight(tmp_path_factory, corpus) -> Path:
    """The run the jobs make, never stopped, outside SLURM, with one thread (as the jobs have)."""
    work = tmp_path_factory.mktemp("straight")
    done = run(
        "train.py",
        *RUN,
        f"data.path={corpus}",
        f"hydra.run.dir={work / 'run'}",
        cwd=work,
        OMP_NUM_THREADS="1",
    )
    assert done.returncode == 0, done.why()
    return work / "run"


def user_folder(work: Path) -> Path:
    """A folder laid out like the repository's (scripts/, conf/), as a user submits from."""
    work.mkdir()
    for name in ("scripts", "conf"):
        (work / name).symlink_to(ROOT / name)
    return work


def stops(run_dir: Path) -> list[tuple[int, int]]:
    """(epoch, step) of each stop the run's log reports, in order."""
    log = (run_dir / "train.log").read_text()
    return [(int(e), int(s)) for e, s in re.findall(r"interrupted at epoch (\d+), step (\d+)", log)]


def stopped_times(run_dir: Path, times: int):
    """A condition: the run's log reports `times` stops."""
    return lambda: len(stops(run_dir)) == times


def check_resumed_each_time_and_ended_as_straight(
    run_dir: Path, straight: Path, signalled_after: list[int]
) -> None:
    """Each stop saved at a batch end inside an epoch, after the step the job had shown when signalled;
    each resume started from exactly the step saved; the run ended as the uninterrupted one did."""
    log = (run_dir / "train.log").read_text()
    stopped = stops(run_dir)
    after = metrics(run_dir)
    resumes = after["resumes"]
    assert len(stopped) == len(resumes) == len(signalled_after), (stopped, resumes, log[-3000:])
    for (epoch, step), resumed, shown in zip(stopped, resumes, signalled_after, strict=True):
        assert step >= shown and step % STEPS_PER_EPOCH, (epoch, step, shown)  # inside an epoch, nothing lost
        assert resumed["checkpoint"] == "interrupted.ckpt" and resumed["step"] == step, resumed
        assert f"from interrupted.ckpt (step {step})" in log
        print(
            f"signalled with last.ckpt at step {shown}; saved interrupted.ckpt at epoch {epoch}, "
            f"step {step}; the requeued job resumed from {resumed['checkpoint']} at step {resumed['step']}"
        )
    assert "SLURM auto-requeueing enabled" not in log  # Lightning's requeue is off: one mechanism
    assert after["status"] == "completed"
    before = metrics(straight)
    for key in ("val_ppl", "test_ppl", "train_ppl", "steps", "epochs"):
        assert after[key] == before[key], (key, after[key], before[key])
    final, reference = weights(after["best_checkpoint"]), weights(before["best_checkpoint"])
    assert final.keys() == reference.keys() and all(torch.equal(final[k], reference[k]) for k in final)
    print(f"test ppl {after['test_ppl']!r}; uninterrupted {before['test_ppl']!r}; weights equal")


def test_a_submitit_job_signalled_mid_epoch_near_its_time_limit_is_requeued_and_resumes_from_that_step(
    on_cluster: Cluster, corpus, straight, tmp_path
):
    """USR2 as SLURM sends it before the time limit (`scancel -s USR2` here). submitit counts a USR2 in
    the last 10 minutes of a job's time (all of a 10-minute job) as a time-out, and requeues it only
    while `max_num_timeout` allows (10 in hydra/launcher=slurm; submitit's default, 0, would end it).
    Earlier, it is a preemption: the same path without the count."""
    work = user_folder(tmp_path / "work")
    sweep = work / "sweep"
    submitter = start(
        "train.py",
        "-m",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=debug",
        "hydra.launcher.timeout_min=10",
        f"hydra.sweep.dir={sweep}",
        *RUN,
        f"data.path={corpus}",
        cwd=work,
    )
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
    finally:
        stop_child(submitter)
    job_log = next((sweep / ".submitit" / job).glob("*_log.err")).read_text()
    assert re.search("Caught signal SIGUSR2 on .*: this job is timed-out", job_log), job_log[-3000:]
    check_resumed_each_time_and_ended_as_straight(run_dir, straight, [signalled_after])


def test_an_sbatch_job_stopped_mid_epoch_by_usr1_then_by_a_requeue_resumes_each_time_from_that_step(
    on_cluster: Cluster, corpus, straight, tmp_path, monkeypatch
):
    work = user_folder(tmp_path / "work")
    monkeypatch.setenv("RNNLAB_OUTPUT_DIR", "outputs")  # runs go where a user's would: outputs/ in its folder
    sbatch = ["sbatch", "--parsable", f"--chdir={work}", str(ROOT / "cluster" / "train.sbatch")]
    job = on_cluster.command(*sbatch, *RUN, f"data.path={corpus}").strip()
    run_dir = work / "outputs" / f"slurm-{job}.0"
    output = work / f"slurm-{job}.out"
    signalled_after = []
    for step, stop in zip(
        SIGNAL_AFTER_STEPS, (["scancel", "-s", "USR1"], ["scontrol", "requeue"]), strict=True
    ):
        on_cluster.wait_for(
            last_checkpoint_at_or_after(f"outputs/slurm-{job}.0", work, step),
            job,
            timeout=300,
            what=f"its last.ckpt at step {step}",
            output=output,
        )
        signalled_after.append(checkpoint_step(run_dir / "checkpoints" / "last.ckpt"))
        on_cluster.command(*stop, job)
        on_cluster.wait_for(  # stopped: the requeued job is back in the queue, not yet running
            stopped_times(run_dir, len(signalled_after)),
            job,
            timeout=120,
            what="its stop",
            output=output,
        )
    on_cluster.wait_until_done(job, timeout=300)
    assert sorted(p.name for p in (work / "outputs").iterdir()) == [run_dir.name], output.read_text()[-3000:]
    check_resumed_each_time_and_ended_as_straight(run_dir, straight, signalled_after)
