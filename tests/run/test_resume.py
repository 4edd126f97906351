import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rnnlab.command_line import rewrite_command
from rnnlab.errors import UserError
from rnnlab.run.lock import LOCK
from rnnlab.run.resume import job_plan


def make_run(path: Path, overrides: list[str], checkpoint: str | None = "last.ckpt") -> Path:
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if checkpoint:
        (path / "checkpoints").mkdir()
        torch.save({"global_step": 7, "state_dict": {}}, path / "checkpoints" / checkpoint)
    return path


def test_a_resumed_run_is_composed_from_its_own_overrides_and_the_new_ones(tmp_path):
    run = make_run(tmp_path / "run", ["model=gru", "trainer.max_epochs=2", "data.batch_size=8"])
    args = rewrite_command([f"resume={run}", "trainer.max_epochs=4"])
    assert args == [
        "model=gru",
        "data.batch_size=8",
        "trainer.max_epochs=4",  # the new value replaces the saved one
        f"hydra.run.dir='{run}'",
        f"resume='{run}'",
    ]


def test_ckpt_path_last_resumes_the_newest_run_with_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_OUTPUT_DIR", str(tmp_path / "outputs"))
    old = make_run(tmp_path / "outputs" / "a", ["seed=1"])
    new = make_run(tmp_path / "outputs" / "b", ["seed=2"])
    make_run(tmp_path / "outputs" / "c", ["seed=3"], checkpoint=None)  # newest, but nothing to resume
    os.utime(old / "checkpoints" / "last.ckpt", (1, 1))
    assert f"hydra.run.dir='{new}'" in rewrite_command(["ckpt_path=last"])


def parent_folder(run: Path) -> Path:
    return run.parent


def without_checkpoint(run: Path) -> Path:
    (run / "checkpoints" / "last.ckpt").unlink()
    return run


def locked_by_a_live_process(run: Path) -> Path:
    (run / LOCK).write_text(f"{os.getppid()}\n")  # pytest's parent: alive, and not the caller
    return run


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["model.hidden_size=32"], "model.hidden_size=32 cannot change in a resumed run"),
        (None, ["data=tinyshakespeare"], "data=tinyshakespeare cannot change"),
        (parent_folder, [], "is not a run folder (no .hydra/overrides.yaml)"),
        (without_checkpoint, [], "has no checkpoints/last.ckpt"),
        (locked_by_a_live_process, [], "is still writing to"),
    ],
)
def test_what_cannot_be_resumed_is_refused_in_one_line(tmp_path, setup, args, message):
    run = make_run(tmp_path / "runs" / "run", ["model=gru"])
    run = setup(run) if setup else run
    with pytest.raises(UserError, match=re.escape(message)):
        rewrite_command([f"resume={run}", *args])


def test_a_stale_lock_of_a_dead_process_does_not_block_a_resume(tmp_path):
    run = make_run(tmp_path / "run", ["model=gru"])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (run / LOCK).write_text(dead.stdout)
    assert f"resume='{run}'" in rewrite_command([f"resume={run}"])


def test_a_sweep_resumes_only_with_its_own_command(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    task = ["model=rnn,gru", "trainer.max_epochs=2"]
    (sweep / "sweep_command.yaml").write_text(yaml.safe_dump({"overrides": task}))
    args = rewrite_command(["-m", "trainer.max_epochs=2", "model=rnn,gru", f"resume={sweep}"])
    assert args == [
        "-m",
        "trainer.max_epochs=2",
        "model=rnn,gru",
        f"hydra.sweep.dir='{sweep}'",
        f"resume='{sweep}'",
    ]
    with pytest.raises(UserError, match="was swept by another command"):
        rewrite_command(["-m", "model=rnn,lstm", "trainer.max_epochs=2", f"resume={sweep}"])
    with pytest.raises(UserError, match="is not a sweep folder"):
        rewrite_command(["-m", *task, f"resume={tmp_path}"])


@pytest.mark.parametrize(
    ("status", "checkpoint", "action"),
    [
        ("completed", True, "skip"),
        ("pruned", True, "skip"),  # a search's pruned trial ended as its pruner wanted
        ("failed", True, "rerun"),
        ("interrupted", True, "resume"),
        (None, True, "resume"),  # killed: no metrics.json, but a checkpoint
        (None, False, "start"),  # never got as far as a checkpoint
    ],
)
def test_a_sweep_job_skips_resumes_or_reruns_by_how_it_ended(tmp_path, status, checkpoint, action):
    run = make_run(tmp_path / "job", [], checkpoint="last.ckpt" if checkpoint else None)
    if status:
        (run / "metrics.json").write_text(json.dumps({"status": status}))
    plan = job_plan(run, in_sweep=True)
    assert plan.action == action
    assert (plan.checkpoint is not None) == (action == "resume")


def make_composed_run(path: Path, overrides: list[str], choices: dict, config: dict) -> Path:
    """A run folder as Hydra leaves it: the overrides, the group choices and the composed config."""
    run = make_run(path, overrides)
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    return run


UP_ARROW_RUN = {
    "overrides": ["model=rnn", "trainer.max_epochs=3", "seed=7", "experiment=d2l_rnn"],
    "choices": {"model": "rnn", "data": "timemachine", "experiment": "d2l_rnn", "optimizer": "sgd"},
    "config": {"seed": 7, "model": {"hidden_size": 256}, "data": {"batch_size": 32}},
}


@pytest.mark.parametrize(
    "repeated",
    [
        ["model=rnn", "trainer.max_epochs=3", "seed=7"],  # the command it was started with
        ["experiment=d2l_rnn", "seed=7"],
        ["data=timemachine"],  # a default choice, named on the command line now
        ["optimizer=sgd", "model.hidden_size=256", "data.batch_size=32"],  # values equal to the composed ones
        ["+model=rnn", "seed='7'"],
    ],
)
def test_resume_accepts_the_command_it_was_started_with(tmp_path, repeated):
    """The up-arrow habit: repeat the command and add resume=; settings equal to the run's are no change."""
    run = make_composed_run(tmp_path / "run", **UP_ARROW_RUN)
    args = rewrite_command([*repeated, f"resume={run}"])
    assert args[-2:] == [f"hydra.run.dir='{run}'", f"resume='{run}'"]


@pytest.mark.parametrize(
    ("changed", "refused"),
    [
        (["model=rnn", "seed=8"], "seed=8"),
        (["model=gru", "seed=7"], "model=gru"),
        (["data=tinyshakespeare"], "data=tinyshakespeare"),
        (["experiment=d2l_lstm"], "experiment=d2l_lstm"),
        (["model.hidden_size=128"], "model.hidden_size=128"),
    ],
)
def test_resume_refuses_only_what_really_changes_a_fixed_setting(tmp_path, changed, refused):
    run = make_composed_run(tmp_path / "run", **UP_ARROW_RUN)
    with pytest.raises(UserError, match=re.escape(f"{refused} cannot change in a resumed run")):
        rewrite_command([*changed, f"resume={run}"])
