"""Long runs: killed at a random step inside an epoch, a run resumes into its own folder and ends
bit for bit where an uninterrupted run ends; Ctrl-C and SIGTERM too; sweeps resume job by job."""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from rnnlab.checkpoint import checkpoints_newest_first
from rnnlab.data.text.datamodule import WINDOWS_PER_BATCH
from tests.holds import hold_at_mid_epoch_checkpoint
from tests.project import (
    ROOT,
    TINY,
    Child,
    call,
    child_environment,
    launch,
    new_output_file,
    run,
    start,
    wait_until,
    write_repetitive_corpus,
)

pytestmark = pytest.mark.slow  # CLI subprocesses

EXACT = ["trainer.deterministic=true", "seed=3"]
# last.ckpt only from the mid-epoch callback, every 37 steps: never at an epoch's end in these runs (474
# windows an epoch; the tbptt case 237 windows of 3 steps), so a kill always leaves a checkpoint from
# inside an epoch.
EVERY_37_STEPS = [
    "callbacks.model_checkpoint.save_last=false",
    "callbacks.mid_epoch_checkpoint.train_time_interval=null",
    "callbacks.mid_epoch_checkpoint.every_n_train_steps=37",
]
TEXT = [*TINY, "trainer.max_epochs=3", "model.num_layers=2", "model.dropout=0.2"]
CASES = {
    "sequential": [*TEXT, "data.max_tokens=20000", *EVERY_37_STEPS],
    "random": [*TEXT, "data.max_tokens=20000", "data.sampling=random", *EVERY_37_STEPS],
    # 3 optimiser steps a window: half the text gives about as many steps an epoch as the others have
    "tbptt": [*TEXT, "data.max_tokens=10000", "task.tbptt_steps=4", *EVERY_37_STEPS],
    "diabetes": [
        "experiment=diabetes_mlp",
        "data.batch_size=8",  # 67 batches an epoch
        "trainer.max_epochs=12",
        "callbacks.model_checkpoint.save_last=false",
        "callbacks.mid_epoch_checkpoint.train_time_interval=null",
        "callbacks.mid_epoch_checkpoint.every_n_train_steps=7",  # an epoch's end only at step 469
    ],
}
KILL_BETWEEN = {"sequential": (60, 900), "random": (60, 900), "tbptt": (75, 1350), "diabetes": (40, 400)}


# The kill points are drawn from this seed, printed with every failure: TEST_KILL_SEED=<seed> repeats them.
KILL_SEED = int(os.environ.get("TEST_KILL_SEED", random.SystemRandom().randrange(10**6)))


def checkpoint_step(path: Path) -> int | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["global_step"]
    except (OSError, RuntimeError, EOFError):
        return None


def saved_at_or_after(checkpoint: Path, step: int):
    """A condition: `checkpoint` holds step `step` or a later one (read again only when it changes)."""
    seen = {"mtime": None}

    def holds() -> bool:
        mtime = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
        if mtime is None or mtime == seen["mtime"]:
            return False
        seen["mtime"] = mtime
        saved = checkpoint_step(checkpoint)
        return saved is not None and saved >= step

    return holds


def kill_after_step(child: Child, checkpoint: Path, step: int, timeout: float = 600) -> None:
    """kill -9 as soon as the run has saved a checkpoint at or after `step`."""
    wait_until(
        saved_at_or_after(checkpoint, step), timeout=timeout, child=child, what=f"a checkpoint at step {step}"
    )
    child.process.kill()
    child.process.wait(timeout=60)
    assert child.process.returncode == -signal.SIGKILL, child.describe()


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def same_ending(a: Path, b: Path) -> bool:
    keys = (
        "val_ppl",
        "test_ppl",
        "train_ppl",
        "val_acc",
        "test_acc",
        "val_loss",
        "test_loss",
        "epochs",
        "steps",
    )
    ma, mb = metrics(a), metrics(b)
    return all(ma.get(k) == mb.get(k) for k in keys)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    best = metrics(run_dir)["best_checkpoint"]
    return torch.load(best, map_location="cpu", weights_only=True)["state_dict"]


def last_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)[
        "state_dict"
    ]


def equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return write_repetitive_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


# The sequential kill case and both signal cases stop the same command; they share its one
# uninterrupted run (the xdist group keeps them on one worker, so it runs once).
SHARES_STRAIGHT_RUN = pytest.mark.xdist_group("resume_text_sequential")


def straight_run(args: list[str], straight: Path) -> Path:
    """The uninterrupted run of `args`, for comparison: train.py's main in this process. The runs it is
    compared with are fresh interpreters, as a user's are; this one runs in a test process that has
    already run others, so a result that depended on a process's state (an unseeded draw, string
    hashing, a thread count) would differ from theirs."""
    done = call("train.py", *args, f"hydra.run.dir={straight}", cwd=straight.parent, capfd=None)
    assert done.returncode == 0, done.why()
    return straight


@pytest.fixture(scope="session")
def straight_text_run(tmp_path_factory, corpus) -> Path:
    """The uninterrupted run of CASES["sequential"] (= the signal tests' command)."""
    args = [*CASES["sequential"], *EXACT, f"data.path={corpus}"]
    return straight_run(args, tmp_path_factory.mktemp("straight") / "straight")


def uninterrupted_run(request, case: str, args: list[str], work: Path) -> Path:
    """The uninterrupted run of `args`: shared for the sequential text case, else run here."""
    if case == "sequential":
        return request.getfixturevalue("straight_text_run")
    return straight_run(args, work / "straight")


def start_held(*args: str, cwd: Path) -> Child:
    """`python scripts/train.py ARGS` in a fresh interpreter that can import `tests` (tests/holds.py)."""
    output_file = new_output_file("train")
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), *args]
    env = child_environment(cwd, PYTHONPATH=str(ROOT))
    return Child(launch(command, cwd=cwd, env=env, stdout=output_file, stderr=None), output_file)


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=SHARES_STRAIGHT_RUN) if c == "sequential" else c for c in CASES]
)
def test_killed_at_a_random_step_a_run_resumes_into_its_folder_and_ends_bit_for_bit_the_same(
    request, tmp_path, corpus, case
):
    args = [*CASES[case], *EXACT, f"data.path={corpus}"] if case != "diabetes" else [*CASES[case], *EXACT]
    work = tmp_path / "work"
    work.mkdir()
    straight, broken = uninterrupted_run(request, case, args, work), work / "broken"

    # The run holds (tests/holds.py) at its first mid-epoch checkpoint at or after the drawn step that is
    # not at an epoch's last batch, and is killed there: the same point on any machine, however loaded.
    step = random.Random(f"{KILL_SEED}-{case}").randint(*KILL_BETWEEN[case])
    print(f"{case}: killed at the first checkpoint at or after step {step} (TEST_KILL_SEED={KILL_SEED})")
    held = tmp_path / "held"
    child = start_held(*args, *hold_at_mid_epoch_checkpoint(step, held), f"hydra.run.dir={broken}", cwd=work)
    wait_until(
        held.exists, timeout=600, child=child, what=f"the hold at a checkpoint at or after step {step}"
    )
    child.process.kill()
    assert child.process.wait(timeout=60) == -signal.SIGKILL, child.describe()
    saved = torch.load(broken / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    (position,) = [v for k, v in saved.items() if k.endswith("Data")]  # the datamodule's position
    assert position["batches_done"] > 0, f"killed at step {saved['global_step']}: not inside an epoch"
    assert not saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["is_last_batch"]
    assert checkpoints_newest_first(broken)[0].name == "last.ckpt"  # nothing was saved after it
    resumed_at = saved["global_step"]
    where = f"epoch {position['epoch'] + 1}, batch {position['batches_done']}"
    print(f"{case}: last.ckpt at step {resumed_at}, {where}")

    # its saved overrides add the hold again, which does not hold twice (and needs `tests` importable)
    resumed = run("train.py", f"resume={broken}", cwd=work, PYTHONPATH=str(ROOT))
    assert resumed.returncode == 0, resumed.why()
    assert f"resuming {broken}" in resumed.stdout
    assert same_ending(straight, broken), (metrics(straight), metrics(broken))
    assert equal(final_weights(straight), final_weights(broken))  # the tested ones
    assert equal(last_weights(straight), last_weights(broken))  # the last saved, late in the last epoch
    run_folders = sorted(p.name for p in work.iterdir())
    assert run_folders in (["broken"], ["broken", "straight"])  # no new run folder for the resume

    after = metrics(broken)
    assert after["status"] == "completed" and after["resumes"][0]["step"] == resumed_at
    # One TensorBoard run whose curve is the uninterrupted run's: every step once, the same values. The
    # kill comes right after a checkpoint, which is saved before Lightning writes that batch's point:
    # that one point (at the resumed step) may not have reached the disk; every other one must match.
    tag = "train/loss"
    uninterrupted = scalars(straight, tag)
    assert scalars(broken, tag) in (uninterrupted, [p for p in uninterrupted if p[0] != resumed_at])
    log = (broken / "train.log").read_text()
    assert log.count("Seed set to 3") == 2 and "resuming" in log  # appended, not replaced


def steps_per_loader_batch(run_dir: Path) -> int:
    """Optimiser steps in one loader batch: its windows, times the pieces of each (no tbptt here)."""
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert config.task.tbptt_steps is None
    return config.data.windows_per_batch or WINDOWS_PER_BATCH


@SHARES_STRAIGHT_RUN
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_saves_at_a_batch_end_and_resumes_exactly(
    tmp_path, corpus, straight_text_run, stop
):
    args = [*CASES["sequential"], *EXACT, f"data.path={corpus}"]
    work = tmp_path / "work"
    work.mkdir()
    straight, broken = straight_text_run, work / "broken"
    steps_per_epoch = metrics(straight)["steps"] // 3

    # Signalled once a checkpoint shows it well inside epoch 2, between its validations (at epoch ends)
    child = start("train.py", *args, f"hydra.run.dir={broken}", cwd=work)
    inside = steps_per_epoch + 100
    wait_until(
        saved_at_or_after(broken / "checkpoints" / "last.ckpt", inside),
        timeout=600,
        child=child,
        what=f"a checkpoint at step {inside}",
    )
    child.process.send_signal(stop)
    try:
        assert child.process.wait(timeout=120) == 128 + stop, child.describe()
    finally:
        child.process.kill()
    rest = child.output()
    saved = torch.load(broken / "checkpoints" / "interrupted.ckpt", map_location="cpu", weights_only=True)
    (position,) = [v for k, v in saved.items() if k.endswith("Data")]  # the datamodule's position
    epoch, batches = position["epoch"], position["batches_done"]
    where = f"saved at step {saved['global_step']}, epoch {epoch + 1}, batch {batches}; {child.describe()}"
    assert (
        epoch == 1
        and batches > 0
        and not saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["is_last_batch"]
    ), where
    # At a batch end: every window of the batches done was trained on, and none of the next one.
    assert saved["global_step"] == epoch * steps_per_epoch + batches * steps_per_loader_batch(broken), where
    assert f"python scripts/train.py \"resume='{broken.resolve()}'\"" in rest
    assert metrics(broken)["status"] == "interrupted"

    resumed = run("train.py", f'resume="{broken.resolve()}"', cwd=work)
    assert resumed.returncode == 0, resumed.why()
    assert "from interrupted.ckpt" in resumed.stdout
    assert same_ending(straight, broken) and equal(final_weights(straight), final_weights(broken))


def test_a_resumed_run_takes_a_longer_schedule_but_refuses_a_new_network(tmp_path, corpus, capfd):
    work = tmp_path / "work"
    work.mkdir()
    run_dir = work / "run"
    args = [*TINY, "data.max_tokens=5000", f"data.path={corpus}", "trainer.max_epochs=2", "scheduler=cosine"]
    assert call("train.py", *args, f"hydra.run.dir={run_dir}", cwd=work, capfd=capfd).returncode == 0
    before = sorted(p.name for p in run_dir.rglob("*"))
    metrics_before = metrics(run_dir)

    refused = call("train.py", f"resume={run_dir}", "model.hidden_size=32", cwd=work, capfd=capfd)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "model.hidden_size=32 cannot change in a resumed run" in refused.stderr
    assert sorted(p.name for p in run_dir.rglob("*")) == before  # nothing written

    longer = call("train.py", f"resume={run_dir}", "trainer.max_epochs=4", cwd=work, capfd=capfd)
    assert longer.returncode == 0, longer.why()
    after = metrics(run_dir)
    assert after["epochs"] == 4 and after["resumes"][0]["step"] == metrics_before["steps"]
    epochs = [step for step, _ in scalars(run_dir, "val/ppl")]
    assert len(epochs) == 4 and epochs == sorted(set(epochs))  # one curve, epochs 1-4
    # The cosine schedule follows the new length: at epoch 3 of 4 it is not yet at its end.
    lrs = [value for _, value in scalars(run_dir, "lr-Adam")]
    assert len(lrs) == 4 and lrs[2] > 0.1 * lrs[0]


def test_a_sweep_resumes_skipping_completed_jobs_resuming_killed_ones_and_rerunning_failed_ones(
    tmp_path, corpus, capfd
):
    work = tmp_path / "work"
    work.mkdir()
    sweep = work / "sweep"
    # num_steps=-5 fails; num_steps=8 is killed inside an epoch
    text = [a for a in TEXT if not a.startswith("data.num_steps=")]
    args = ["-m", *text, *EXACT, *EVERY_37_STEPS, f"data.path={corpus}", "data.num_steps=10,-5,8"]
    child = start("train.py", *args, f"hydra.sweep.dir={sweep}", cwd=work)
    kill_after_step(child, sweep / "data.num_steps=8" / "checkpoints" / "last.ckpt", 500)
    assert metrics(sweep / "data.num_steps=10")["status"] == "completed"
    assert metrics(sweep / "data.num_steps=-5")["status"] == "failed"
    assert not (sweep / "data.num_steps=8" / "metrics.json").exists()

    different = call("train.py", *args[:-1], "data.num_steps=10,12", f"resume={sweep}", cwd=work, capfd=capfd)
    assert different.returncode == 2 and "was swept by another command" in different.stderr

    resumed = run("train.py", *args, f"resume={sweep}", cwd=work)
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 1, output[-3000:]  # the failed job fails again, and the sweep says so
    assert "resume: 1 skipped: data.num_steps=10" in output
    assert "resume: 1 resumed: data.num_steps=8" in output
    assert "resume: 1 run again: data.num_steps=-5" in output
    assert metrics(sweep / "data.num_steps=8")["status"] == "completed"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [
        "data.num_steps=-5",
        "data.num_steps=10",
        "data.num_steps=8",
    ]
