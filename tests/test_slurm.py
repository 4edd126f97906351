"""Inside a SLURM job: Lightning's cluster environment without its requeue, and `scontrol requeue` of
the right job (a fake `scontrol` records what it is asked; the live cluster is in tests/cluster)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from lightning.fabric.plugins.environments import SLURMEnvironment

from rnnlab import slurm

SLURM_VARIABLES = (
    "SLURM_JOB_ID",
    "SLURM_NTASKS",
    "SLURM_JOB_NAME",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
)


@pytest.fixture(autouse=True)
def outside_slurm(monkeypatch):
    for variable in SLURM_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def fake_program(folder: Path, name: str, status: int = 0) -> Path:
    """A program on PATH that appends its arguments to `<name>.calls` and exits with `status`."""
    calls = folder / f"{name}.calls"
    program = folder / name
    program.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho refused >&2\nexit {status}\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return calls


def test_under_srun_lightning_gets_the_slurm_environment_without_its_auto_requeue(monkeypatch):
    assert slurm.cluster_plugins() == []  # not under srun: Lightning chooses, as always
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2")
    (environment,) = slurm.cluster_plugins()
    assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue is False
    monkeypatch.setenv("SLURM_JOB_NAME", "interactive")  # Lightning's interactive shell: not srun's task
    assert slurm.cluster_plugins() == []


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"SLURM_JOB_ID": "41"}, "41"),
        ({"SLURM_JOB_ID": "41", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "2"}, "40_2"),
    ],
)
def test_requeue_asks_scontrol_for_this_job_or_array_task(tmp_path, monkeypatch, variables, expected):
    calls = fake_program(tmp_path, "scontrol")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)
    assert slurm.requeue() is True
    assert calls.read_text().split("\n")[0] == f"requeue {expected}"


def test_a_refused_requeue_says_why_and_no_job_id_asks_nothing(tmp_path, monkeypatch, caplog):
    calls = fake_program(tmp_path, "scontrol", status=1)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert slurm.requeue() is False and not calls.exists()  # outside a job
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    assert slurm.requeue() is False
    assert "scontrol requeue 41: refused" in caplog.text
