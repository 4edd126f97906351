"""Resuming a damaged run: the newest readable checkpoint, a damaged metrics.json set aside, and one
line when nothing can be resumed."""

import json
import logging
import os
import re
import time
from pathlib import Path

import pytest
import torch
import yaml

from rnnlab.command_line import rewrite_command
from rnnlab.errors import UserError
from rnnlab.overrides import saved_overrides
from rnnlab.run.resume import job_plan

OVERRIDES = ["model=gru", "data.batch_size=8"]


def save_checkpoint(path: Path, step: int, age_s: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step, "state_dict": {"w": torch.zeros(2)}}, path)
    when = time.time() - 100 - age_s
    os.utime(path, (when, when))
    return path


def cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run with last.ckpt (step 30), best-epoch001 (step 20) and an older best (step 10)."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(OVERRIDES))
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": OVERRIDES}}}))
    save_checkpoint(run / "checkpoints" / "last.ckpt", 30, age_s=0)
    save_checkpoint(run / "checkpoints" / "best-epoch001.ckpt", 20, age_s=10)
    save_checkpoint(run / "checkpoints" / "best-epoch000.ckpt", 10, age_s=20)
    (run / "metrics.json").write_text(json.dumps({"status": "completed", "resumes": [{"step": 5}]}))
    return run


def test_a_cut_last_checkpoint_gives_way_to_the_newest_readable_one(run, caplog):
    cut(run / "checkpoints" / "last.ckpt")
    damaged = (run / "checkpoints" / "last.ckpt").read_bytes()
    caplog.set_level(logging.WARNING)
    plan = job_plan(run, in_sweep=False)
    assert plan.action == "resume" and plan.checkpoint.name == "best-epoch001.ckpt"
    assert re.search(
        r"unreadable: .*last\.ckpt: .*; set aside as last\.ckpt\.damaged, going back from "
        r"best-epoch001\.ckpt \(step 20\)",
        caplog.text,
    )
    assert (run / "checkpoints" / "last.ckpt.damaged").read_bytes() == damaged  # renamed, not deleted
    assert "went back from best-epoch001.ckpt (step 20)" in plan.lost


def test_an_interrupted_checkpoint_newer_than_a_damaged_last_one_is_taken(run):
    save_checkpoint(run / "checkpoints" / "interrupted.ckpt", 25, age_s=5)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"\x00garbage")
    assert job_plan(run, in_sweep=False).checkpoint.name == "interrupted.ckpt"


def test_no_readable_checkpoint_is_one_line_and_changes_nothing(run):
    for checkpoint in (run / "checkpoints").iterdir():
        cut(checkpoint)
    before = sorted(p.name for p in run.rglob("*"))
    with pytest.raises(UserError, match=r"no checkpoint of .* can be read \(checkpoints/last\.ckpt: .*\); "):
        job_plan(run, in_sweep=False)
    assert sorted(p.name for p in run.rglob("*")) == before


def test_a_sweep_job_without_a_readable_checkpoint_starts_again(run):
    (run / "metrics.json").unlink()
    for checkpoint in (run / "checkpoints").iterdir():
        checkpoint.write_bytes(b"")
    plan = job_plan(run, in_sweep=True)
    assert plan.action == "start" and "went back to the start" in plan.lost


def test_an_unreadable_metrics_file_is_set_aside_and_noted(run, caplog):
    (run / "metrics.json").write_text('{"status": "compl')
    caplog.set_level(logging.WARNING)
    plan = job_plan(run, in_sweep=True)  # a sweep job whose result is lost: resumed, not skipped
    assert plan.action == "resume" and plan.checkpoint.name == "last.ckpt" and plan.previous is None
    assert not (run / "metrics.json").exists()
    assert (run / "metrics.json.damaged").read_text() == '{"status": "compl'
    assert "unreadable: " in caplog.text and "metrics.json: JSONDecodeError" in caplog.text
    (note,) = plan.lost
    assert note.startswith("metrics.json was unreadable (JSONDecodeError") and "earlier resumes" in note


def test_a_second_damaged_file_of_the_same_name_gets_its_own_aside_name(run):
    (run / "metrics.json.damaged").write_text("an earlier one")
    (run / "metrics.json").write_bytes(b"\xff\xfe")
    job_plan(run, in_sweep=False)
    assert (run / "metrics.json.damaged").read_text() == "an earlier one"
    assert (run / "metrics.json.damaged-2").read_bytes() == b"\xff\xfe"


@pytest.mark.parametrize("damaged", ["overrides.yaml", "hydra.yaml"])
def test_a_damaged_copy_of_the_overrides_is_set_aside_and_the_other_used(run, damaged, capsys):
    (run / ".hydra" / damaged).write_bytes(b"\xff\x00 not yaml")
    assert saved_overrides(run) == OVERRIDES
    assert (run / ".hydra" / f"{damaged}.damaged").is_file()
    assert f"warning: unreadable: {run / '.hydra' / damaged}: UnicodeDecodeError" in capsys.readouterr().err


def test_overrides_that_disagree_or_are_both_lost_are_one_line(run):
    (run / ".hydra" / "overrides.yaml").write_text("- model=gru\n")  # cut after its first line
    with pytest.raises(UserError, match="disagrees with hydra.yaml"):
        rewrite_command([f"resume={run}"])
    (run / ".hydra" / "hydra.yaml").write_text("hydra: {over")
    (run / ".hydra" / "overrides.yaml").write_text("just a string")
    with pytest.raises(
        UserError, match=r"unreadable: .*overrides.yaml: holds a str, not a list \(hydra.yaml"
    ):
        rewrite_command([f"resume={run}"])


def test_a_damaged_sweep_command_is_one_line(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep_command.yaml").write_bytes(b"overrides: [model=rnn,")
    with pytest.raises(UserError, match=r"unreadable: .*sweep_command.yaml: ParserError"):
        rewrite_command(["-m", "model=rnn,gru", f"resume={sweep}"])


def test_a_lock_names_its_process_by_pid_and_start_time(tmp_path):
    from rnnlab.run.lock import LOCK, process_start, writer_of

    parent = os.getppid()  # alive, and not this process
    (tmp_path / LOCK).write_text(f"{parent} {process_start(parent)}\n")
    assert writer_of(tmp_path) == parent
    (tmp_path / LOCK).write_text(f"{parent} 1\n")  # the pid was reused, or the lock damaged
    assert writer_of(tmp_path) is None
    (tmp_path / LOCK).write_bytes(b"\xff\xfe\x00")
    assert writer_of(tmp_path) is None
