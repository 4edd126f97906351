"""What a resumed search takes over: the trials its own folder left running when it was killed, never
another worker's (that worker may be training it on another machine, where no local pid tells)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hydra_plugins.rnnlab_optuna_sweeper.sweeper import SWEEP_DIR, RnnlabOptunaSweeper
from rnnlab.run.lock import LOCK, process_start

optuna = pytest.importorskip("optuna", reason='the sweep extra is not installed: pip install -e ".[sweep]"')


def running_trial(study, owner: Path | None, run_dir: Path | None):
    trial = study.ask()
    if owner is not None:
        trial.set_user_attr(SWEEP_DIR, str(owner.resolve()))
    if run_dir is not None:
        run_dir.mkdir(parents=True)
        trial.set_user_attr("run_dir", str(run_dir))
    return trial.number


def test_a_resumed_worker_takes_over_only_its_own_trials_that_no_live_process_writes(tmp_path):
    study = optuna.create_study()
    mine, theirs = tmp_path / "worker-0", tmp_path / "worker-1"
    abandoned = running_trial(study, mine, mine / "0")
    never_started = running_trial(study, mine, None)  # asked, killed before its job began
    still_written = running_trial(study, mine, mine / "2")
    writer = subprocess.Popen(["sleep", "60"])  # a live process holds its run.lock
    running_trial(study, theirs, theirs / "3")  # another worker's, its run.lock's pid unknown here
    older = running_trial(study, None, mine / "4")  # a study from before trials were marked: taken over
    done = study.ask()
    study.tell(done, 1.0)

    sweeper = RnnlabOptunaSweeper()
    sweeper.sweep_dir = mine
    try:
        (mine / "2" / LOCK).write_text(f"{writer.pid} {process_start(writer.pid)}\n")
        assert [t.number for t in sweeper.left_running(study)] == [abandoned, never_started, older]
    finally:
        writer.kill()
        writer.wait()
    # once its writer is gone, that trial is left running too
    assert [t.number for t in sweeper.left_running(study)] == [abandoned, never_started, still_written, older]
