"""`-m` sweeps through train.py's main in-process: one folder per job named by its overrides, failures
that don't stop the sweep, what a finished sweep says to do next; `compare.py` as a user starts it,
and what a TensorBoard server shows for them."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.project import (
    ROOT,
    TINY,
    call,
    child_environment,
    module_installed,
    new_output_file,
    plugin_installed,
    run_command,
    run_dirs,
    write_repetitive_corpus,
)

pytestmark = pytest.mark.slow  # whole sweeps: `pytest -m "not slow"` leaves them out

JOBS = {cell: f"model={cell}" for cell in ("gru", "rnn")}  # named by what varies across the sweep


@pytest.fixture(scope="session")  # with xdist_group("sweep"): built once
def sweep(tmp_path_factory) -> tuple[Path, Path, str]:
    """A finished 2-job sweep (rnn, gru); yields (its working dir, the sweep dir, its output)."""
    workdir = tmp_path_factory.mktemp("sweep")
    corpus = write_repetitive_corpus(workdir / "corpus.txt")
    result = call(
        "train.py",
        "-m",
        "model=rnn,gru",
        *TINY,
        f"data.path={corpus}",
        "trainer.max_epochs=2",
        "data.max_tokens=4000",
        cwd=workdir,
        capfd=None,
    )
    assert result.returncode == 0, result.why()
    (sweep_dir,) = {job.parent for job in run_dirs(workdir / "outputs" / "multirun")}
    return workdir, sweep_dir, result.stdout + result.stderr


@pytest.mark.xdist_group("sweep")  # one worker runs the sweep fixture, once
def test_each_job_has_its_own_folder_named_by_its_overrides(sweep):
    workdir, sweep_dir, _ = sweep
    assert [p.name for p in workdir.iterdir() if p.name != "corpus.txt"] == ["outputs"]
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == sorted(JOBS.values())
    for cell, name in JOBS.items():
        job = sweep_dir / name
        assert f"cell: {cell}" in (job / ".hydra" / "config.yaml").read_text()
        assert list(job.glob("events.out.tfevents.*")) and (job / "checkpoints" / "last.ckpt").is_file()
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["epochs"] == 2 and metrics["tokens_per_s"] > 0
        assert f"model={cell}" in metrics["overrides"] and "trainer.max_epochs=2" in metrics["overrides"]
        assert "trainer.max_epochs=2" in (job / ".hydra" / "overrides.yaml").read_text()  # the full list
    assert not list(workdir.rglob("lightning_logs"))


@pytest.mark.xdist_group("sweep")  # one worker runs the sweep fixture, once
def test_a_finished_sweep_names_its_folder_and_the_commands_that_come_next(sweep):
    _, sweep_dir, output = sweep
    said = output.split("sweep done: all 2 jobs completed", 1)[1]
    assert f"sweep dir: {sweep_dir}" in said
    assert f"compare its runs: python scripts/compare.py {sweep_dir}" in said
    assert f"look at it: tensorboard --logdir {sweep_dir}" in said
    assert "optuna-dashboard" not in said  # a plain sweep has no study


@pytest.mark.xdist_group("sweep")  # one worker runs the sweep fixture, once
def test_generate_and_resume_from_a_sweep_checkpoint(sweep, capfd):
    workdir, sweep_dir, _ = sweep
    best = json.loads((sweep_dir / JOBS["gru"] / "metrics.json").read_text())["best_checkpoint"]
    generated = call("generate.py", f"ckpt={best}", "prefix=the quick", "length=20", cwd=workdir, capfd=capfd)
    assert generated.returncode == 0, generated.why()
    assert generated.stdout.startswith("the quick") and len(generated.stdout.strip()) == len("the quick") + 20

    # resume a job for a third epoch, with a scheduler stepping on validation perplexity; the path has
    # '=' and ',' in it, so Hydra needs it quoted
    last = sweep_dir / JOBS["rnn"] / "checkpoints" / "last.ckpt"
    resumed = call(
        "train.py",
        "model=rnn",
        *TINY,
        f"data.path={workdir / 'corpus.txt'}",
        "data.max_tokens=4000",
        "trainer.max_epochs=3",
        "scheduler=plateau",
        f'ckpt_path="{last}"',
        cwd=workdir,
        capfd=capfd,
    )
    assert resumed.returncode == 0, resumed.why()
    (resumed_dir,) = [d for d in run_dirs(workdir / "outputs") if "multirun" not in d.parts]
    metrics = json.loads((resumed_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 3
    assert "Restored all states from the checkpoint" in (resumed_dir / "train.log").read_text()


@pytest.mark.xdist_group("sweep")  # one worker runs the sweep fixture, once
def test_compare_tabulates_the_sweep_sorted_by_validation_perplexity(sweep, tmp_path):
    workdir, sweep_dir, _ = sweep
    # the one compare.py started as a user starts it (a fresh interpreter), as the sweep's end said
    command = [sys.executable, "scripts/compare.py", str(sweep_dir), "--out", str(tmp_path)]
    result = run_command(command, cwd=ROOT, timeout=120, env=child_environment())
    assert result.returncode == 0, result.why()
    with (tmp_path / "comparison.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert sorted(row["run"] for row in rows) == ["model=gru", "model=rnn"]  # shared overrides left out
    values = [float(row["val_ppl"]) for row in rows]
    assert values == sorted(values)
    expected = {
        c: json.loads((sweep_dir / n / "metrics.json").read_text())["val_ppl"] for c, n in JOBS.items()
    }
    assert {row["run"]: float(row["val_ppl"]) for row in rows} == {
        f"model={c}": v for c, v in expected.items()
    }
    assert (tmp_path / "comparison.md").read_text().count("| model=") == 2
    assert (tmp_path / "val_ppl.png").stat().st_size > 5000
    assert "model=gru" in result.stdout


@pytest.mark.xdist_group("sweep")  # one worker runs the sweep fixture, once
def test_event_files_hold_the_hyperparameters_and_real_final_metrics(sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    _, sweep_dir, _ = sweep
    for cell, name in JOBS.items():
        job = sweep_dir / name
        events = EventAccumulator(str(job), size_guidance={"scalars": 0})
        events.Reload()
        metrics = json.loads((job / "metrics.json").read_text())
        for tag, key in (
            ("hp/val_ppl", "val_ppl"),
            ("hp/test_ppl", "test_ppl"),
            ("hp/tokens_per_s", "tokens_per_s"),
        ):
            (final,) = events.Scalars(tag)  # one point: the real value, no placeholder at step 0
            assert final.value == pytest.approx(metrics[key], rel=1e-5) and final.step == metrics["steps"]
        content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        assert hparams["model/cell"].string_value == cell and hparams["model/hidden_size"].number_value == 16
        assert {"train/loss", "val/ppl", "train/ppl", "test/ppl"} <= set(events.Tags()["scalars"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.xdist_group("sweep")  # one worker runs the sweep fixture, once
def test_tensorboard_server_lists_both_runs_and_their_scalars(sweep):
    _, sweep_dir, _ = sweep
    port = free_port()
    log = new_output_file("tensorboard").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(sweep_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline, runs = time.monotonic() + 90, []
        while time.monotonic() < deadline and sorted(runs) != sorted(JOBS.values()):
            time.sleep(1)
            try:
                runs = get_json(f"http://127.0.0.1:{port}/data/runs")
            except OSError:
                continue
        assert sorted(runs) == sorted(JOBS.values()), (
            f"runs {runs}; the server's output: {log.name}"
        )  # by overrides
        tags = get_json(f"http://127.0.0.1:{port}/data/plugin/scalars/tags")
        for name in JOBS.values():
            assert {"val/ppl", "train/loss", "hp/val_ppl"} <= set(tags[name])
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(workdir, repetitive_corpus, capfd):
    result = call(
        "train.py",
        "-m",
        "model.hidden_size=0,16",
        *TINY[:3],
        f"data.path={repetitive_corpus}",
        "data.max_tokens=4000",
        "trainer.max_epochs=1",
        cwd=workdir,
        capfd=capfd,
    )
    assert result.returncode == 1  # the sweep's exit status says something failed
    output = result.stdout + result.stderr
    assert "sweep done: 1 of 2 jobs failed" in output and "model.hidden_size=0 must be positive" in output
    statuses = {
        job.name.split("model.hidden_size=")[1].split(",")[0]: json.loads((job / "metrics.json").read_text())
        for job in run_dirs(workdir / "outputs" / "multirun")
    }
    assert statuses["0"]["status"] == "failed" and "must be positive" in statuses["0"]["error"]
    assert statuses["16"]["status"] == "completed"


@pytest.mark.skipif(
    not module_installed("optuna"), reason='the sweep extra is not installed: pip install -e ".[sweep]"'
)
def test_optuna_search_runs_two_trials_and_writes_the_best_parameters(workdir, repetitive_corpus, capfd):
    command = [
        "hparams_search=lm_optuna",
        "hydra.sweeper.n_trials=2",
        "task.tbptt_steps=choice(5,10)",  # replaces the search's choice: windows here are 10 long
        *TINY[:3],
        f"data.path={repetitive_corpus}",
        "data.max_tokens=3000",
        "trainer.max_epochs=1",
    ]
    result = call("train.py", *command, cwd=workdir, capfd=capfd)
    assert result.returncode == 0, result.why()
    assert "Best parameters:" in result.stdout + result.stderr
    (results,) = workdir.rglob("optimization_results.yaml")
    from omegaconf import OmegaConf

    best = OmegaConf.load(results)
    assert set(best.best_params) == {
        "optimizer.lr",
        "model.hidden_size",
        "model.num_layers",
        "model.dropout",
        "task.tbptt_steps",
    }
    trials = [json.loads(p.read_text()) for p in results.parent.rglob("metrics.json")]
    assert len(trials) == 2 and best.best_value == pytest.approx(min(t["val_ppl"] for t in trials))
    for trial in results.parent.rglob("metrics.json"):  # named by the search space, not the fixed settings
        assert {item.split("=")[0] for item in trial.parent.name.split(",")} == set(best.best_params)

    assert best.trials == {"complete": 2, "pruned": 0, "failed": 0}
    assert (results.parent / "study.db").is_file()  # the study is kept in the sweep folder

    # Resumed, the study already holds its 2 trials: nothing is run or proposed again.
    again = call("train.py", *command, f"resume={results.parent}", cwd=workdir, capfd=capfd)
    assert again.returncode == 0, again.why()
    assert "Launching" not in again.stdout + again.stderr
    assert OmegaConf.load(results).best_value == best.best_value
    assert len(list(results.parent.rglob("metrics.json"))) == 2


@pytest.mark.parametrize(
    ("plugin", "overrides", "target"),
    [
        (
            "hydra_submitit_launcher",
            [
                "hydra/launcher=submitit_slurm",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.gpus_per_node=1",
                "hydra.launcher.timeout_min=240",
                "trainer=gpu",
            ],
            "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
        ),
        (  # rnnlab's: submitit's, requeued after a time-out (tests/cluster runs it)
            "hydra_submitit_launcher",
            ["hydra/launcher=slurm", "hydra.launcher.partition=debug"],
            "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
        ),
        (
            "hydra_joblib_launcher",
            ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
            "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
        ),
    ],
)
def test_cluster_and_parallel_launchers_compose(workdir, plugin, overrides, target, capfd):
    if not plugin_installed(plugin):
        pytest.skip(f'{plugin} is not installed: pip install -e ".[cluster]"')
    result = call("train.py", "model=rnn", *overrides, "--cfg", "hydra", cwd=workdir, capfd=capfd)
    assert result.returncode == 0, result.why()
    assert f"_target_: {target}" in result.stdout
    if "hydra/launcher=slurm" in overrides:
        assert "max_num_timeout: 10" in result.stdout and "partition: debug" in result.stdout
