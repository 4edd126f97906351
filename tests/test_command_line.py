"""One folder per run: claimed atomically before Hydra starts, unique among runs started at once, and
`resume=last` meaning the run that started last."""

import datetime
import multiprocessing
import os
from pathlib import Path

import pytest
import torch
import yaml

from rnnlab import command_line as folders
from rnnlab.command_line import rewrite_command
from rnnlab.overrides import value_of

SECOND = datetime.datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture
def frozen_clock(monkeypatch):
    monkeypatch.setattr(folders, "now", lambda: SECOND)


def claimed(args: list[str]) -> Path:
    (folder,) = [value_of(a) for a in args if a.startswith("hydra.run.dir=")]
    return Path(folder)


def test_a_new_run_gets_a_new_folder_named_by_the_time_and_a_suffix_when_taken(tmp_path, frozen_clock):
    root = tmp_path / "outputs"
    first = rewrite_command(["model=gru", f"paths.output_root={root}"])
    assert first[:2] == ["model=gru", f"paths.output_root={root}"]
    assert claimed(first) == root / "2026-01-01" / "12-00-00" and claimed(first).is_dir()
    second = rewrite_command(["model=gru", f"paths.output_root={root}"])
    assert claimed(second) == root / "2026-01-01" / "12-00-00-2"


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "model=rnn,gru"],  # a sweep: Hydra's sweep folder
        ["--cfg", "job"],  # prints the config, runs nothing
        ["hydra.run.dir=somewhere"],  # named by the user
    ],
)
def test_commands_that_start_no_new_run_of_their_own_are_left_alone(tmp_path, monkeypatch, args):
    monkeypatch.setenv("RNNLAB_OUTPUT_DIR", str(tmp_path / "outputs"))
    assert rewrite_command(args) == args
    assert not (tmp_path / "outputs").exists()


def test_the_processes_lightning_starts_for_a_data_parallel_run_keep_their_command(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert rewrite_command(["model=gru"]) == [
        "model=gru"
    ]  # rank 0's rewritten command, as Lightning gives it


def in_job_step(monkeypatch, job: str, step: str, name: str = "train") -> None:
    for variable, value in [
        ("SLURM_JOB_ID", job),
        ("SLURM_STEP_ID", step),
        ("SLURM_NTASKS", "2"),
        ("SLURM_JOB_NAME", name),
    ]:
        monkeypatch.setenv(variable, value)


def test_the_tasks_srun_starts_for_a_job_step_name_one_folder_which_a_requeued_job_finds(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("RNNLAB_OUTPUT_DIR", str(tmp_path / "outputs"))
    in_job_step(monkeypatch, "77", "0")
    first, second = rewrite_command(["model=gru"]), rewrite_command(["model=gru"])  # two tasks
    assert first == second == ["model=gru", f"hydra.run.dir='{tmp_path / 'outputs' / 'slurm-77.0'}'"]
    assert (tmp_path / "outputs" / "slurm-77.0").is_dir()
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # the same job, requeued: the same folder
    assert rewrite_command(["model=gru"]) == first
    monkeypatch.setenv("SLURM_PROCID", "1")  # the second task: its own log, no .hydra/ of its own
    assert rewrite_command(["model=gru"]) == [
        *first,
        "hydra.job.name=train_ddp_process_1",
        "hydra.output_subdir=null",
    ]
    monkeypatch.setenv("SLURM_PROCID", "0")
    in_job_step(monkeypatch, "77", "1")  # the job's next step is another run
    assert rewrite_command(["model=gru"])[-1] == f"hydra.run.dir='{tmp_path / 'outputs' / 'slurm-77.1'}'"


def test_runs_in_an_interactive_shell_inside_an_allocation_get_folders_of_their_own(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_OUTPUT_DIR", str(tmp_path / "outputs"))
    in_job_step(monkeypatch, "78", "0", name="bash")  # srun --pty bash: every run there is in step 0
    first, second = claimed(rewrite_command(["model=gru"])), claimed(rewrite_command(["model=gru"]))
    assert first != second and "slurm" not in str(first)


def claim_in_another_process(root: str, queue) -> None:
    folders.now = lambda: SECOND
    queue.put(str(claimed(rewrite_command([f"paths.output_root={root}"]))))


def test_processes_claiming_in_the_same_second_each_get_their_own_folder(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [
        context.Process(target=claim_in_another_process, args=(str(tmp_path), queue)) for _ in range(8)
    ]
    for worker in workers:
        worker.start()
    names = sorted(Path(queue.get(timeout=60)).name for _ in workers)
    for worker in workers:
        worker.join(60)
    assert names == sorted(["12-00-00", *(f"12-00-00-{n}" for n in range(2, 9))])


def test_an_unused_claimed_folder_is_removed_and_a_used_one_kept(tmp_path, frozen_clock):
    unused = claimed(rewrite_command([f"paths.output_root={tmp_path}"]))
    used = claimed(rewrite_command([f"paths.output_root={tmp_path}"]))
    (used / ".hydra").mkdir()
    folders.release_unused()
    assert not unused.exists() and used.is_dir()


def test_a_command_that_never_starts_leaves_no_folders_behind(tmp_path, frozen_clock):
    root = tmp_path / "outputs"
    claimed(rewrite_command([f"paths.output_root={root}"]))
    folders.release_unused()
    assert not root.exists()


def make_run(path: Path, events_time: int | None) -> Path:
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["model=gru"]))
    (path / "checkpoints").mkdir()
    torch.save({"global_step": 1, "state_dict": {}}, path / "checkpoints" / "last.ckpt")
    if events_time is not None:
        (path / f"events.out.tfevents.{events_time}.host.1.0").write_bytes(b"")
    return path


def test_resume_last_takes_the_run_that_started_last_not_the_last_name_or_save(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_OUTPUT_DIR", str(tmp_path))
    later = make_run(tmp_path / "2026-01-01" / "12-00-00", events_time=1_767_300_000)
    earlier = make_run(tmp_path / "2026-01-01" / "12-00-00-2", events_time=1_767_200_000)  # a later name
    os.utime(earlier / "checkpoints" / "last.ckpt")  # and resumed, so saved, after the other one
    assert f"hydra.run.dir='{later}'" in rewrite_command(["resume=last"])


def test_without_events_the_folder_name_gives_the_start(tmp_path):
    first = make_run(tmp_path / "2026-01-01" / "12-00-00-3", events_time=None)
    second = make_run(tmp_path / "2026-01-01" / "12-00-01", events_time=None)
    assert folders.started_at(first) < folders.started_at(second)
