"""`hparams_search=...`: rnnlab's Optuna sweeper, run as a user runs it: failed trials recorded and the
search going on, max_failures, pruning, kill -9 and resume=, two workers on one study, bad input,
and the dashboard in a browser."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.holds import hold_as_epoch_starts
from tests.project import (
    ROOT,
    Child,
    chromium,
    launch,
    module_installed,
    new_output_file,
    rendered_page,
    run,
    wait_all,
    wait_until,
)

pytestmark = pytest.mark.slow  # CLI subprocesses

optuna = pytest.importorskip("optuna", reason='the sweep extra is not installed: pip install -e ".[sweep]"')

# lm_optuna with its network fixed small: the learning rate (and the dropout) are what is searched
SMALL = [
    "hparams_search=lm_optuna",
    "data=text",
    "data.batch_size=4",
    "data.num_steps=10",
    "data.max_tokens=3000",
    "model.hidden_size=16",
    "model.num_layers=1",
    "task.tbptt_steps=10",
]


def load_study(url: str, name: str = "lm_optuna"):
    return optuna.load_study(study_name=name, storage=url)


def states(study) -> list[str]:
    return [trial.state.name for trial in study.get_trials()]


def sweep_dir_of(workdir: Path) -> Path:
    (found,) = list((workdir / "outputs" / "multirun").glob("*/*"))
    return found


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


SHARES_GRADED_SEARCH = pytest.mark.xdist_group("graded_search")  # one worker runs it, once


@pytest.fixture(scope="session")
def graded_search(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """A grid over four learning rates: one trains, one is hopeless (pruned by a threshold on its
    first validation), one raises (a negative rate), one ends with an infinite perplexity."""
    from tests.project import write_repetitive_corpus

    workdir = tmp_path_factory.mktemp("graded")
    corpus = write_repetitive_corpus(workdir.parent / f"{workdir.name}-corpus.txt")
    result = run(
        "train.py",
        *SMALL,
        f"data.path={corpus}",
        "model.dropout=0.0",
        "optimizer.lr=choice(0.01,1e-7,-1,1e30)",
        "hydra/sweeper/sampler=grid",
        "hydra/sweeper/pruner=threshold",
        "hydra.sweeper.pruner.upper=15",  # a perplexity above 15 after one validation is hopeless here
        "trainer.max_epochs=2",
        cwd=workdir,
    )
    return result, sweep_dir_of(workdir)


def trial_by_lr(study) -> dict[float, object]:
    return {trial.params["optimizer.lr"]: trial for trial in study.get_trials()}


@SHARES_GRADED_SEARCH
def test_failed_trials_are_recorded_and_the_search_finishes_with_a_failing_status(graded_search):
    result, sweep_dir = graded_search
    assert result.returncode == 1, output(result)[-3000:]
    study = load_study(f"sqlite:///{sweep_dir / 'study.db'}")
    trials = trial_by_lr(study)
    assert sorted(trials) == [-1, 1e-7, 0.01, 1e30]  # the grid, each point once
    assert trials[0.01].state.name == "COMPLETE" and trials[0.01].value < 15
    failed = [t for t in study.get_trials() if t.state.name == "FAIL"]
    assert len(failed) == 2
    assert "optimizer.lr=-1 must be positive" in trials[-1].user_attrs["error"]
    assert "inf" in trials[1e30].user_attrs["error"]
    results = (sweep_dir / "optimization_results.yaml").read_text()
    assert "complete: 1\n  pruned: 1\n  failed: 2" in results and "optimizer.lr: 0.01" in results
    for figure in ("optimization_history", "param_importances", "parallel_coordinate"):
        assert (sweep_dir / f"{figure}.png").stat().st_size > 5000
    assert "sweep done: 2 of 4 jobs failed" in output(result)
    assert "Traceback" not in output(result)


@SHARES_GRADED_SEARCH
def test_a_hopeless_trial_is_pruned_at_its_first_validation_and_keeps_its_checkpoints(graded_search):
    _, sweep_dir = graded_search
    study = load_study(f"sqlite:///{sweep_dir / 'study.db'}")
    hopeless = trial_by_lr(study)[1e-7]
    assert hopeless.state.name == "PRUNED" and list(hopeless.intermediate_values) == [0]
    (job,) = sweep_dir.glob("*optimizer.lr=1e-07*")
    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["status"] == "pruned" and metrics["pruned_at_validation"] == 0
    assert metrics["epochs"] == 1  # of 2: it stopped at the end of the validation that condemned it
    assert (job / "checkpoints" / "last.ckpt").is_file()
    good = trial_by_lr(study)[0.01]
    assert sorted(good.intermediate_values) == [0, 1]  # reported after every validation


def test_max_failures_stops_a_search_whose_trials_only_fail(workdir, repetitive_corpus):
    result = run(
        "train.py",
        *SMALL,
        f"data.path={repetitive_corpus}",
        "optimizer.lr=-1",  # fixes the searched rate: every trial raises
        "hydra.sweeper.n_trials=10",
        "hydra.sweeper.max_failures=2",
        cwd=workdir,
    )
    assert result.returncode == 1
    assert "search stopped: 2 trials failed (hydra.sweeper.max_failures=2)" in output(result)
    study = load_study(f"sqlite:///{sweep_dir_of(workdir) / 'study.db'}")
    assert states(study) == ["FAIL", "FAIL"]


def test_a_killed_search_resumes_its_study_and_its_running_trial(workdir, repetitive_corpus, tmp_path):
    # The second trial holds (tests/holds.py) as its second epoch starts, its first one checkpointed,
    # and the search is killed there: the same point on any machine, however fast or loaded.
    held = tmp_path / "held"
    command = [
        *SMALL,
        f"data.path={repetitive_corpus}",
        "hydra.sweeper.n_trials=3",
        "trainer.max_epochs=3",
        *hold_as_epoch_starts(1, held, trial=1),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RNNLAB_", "HYDRA_"))}
    env["RNNLAB_DATA_DIR"] = str(workdir.parent / "no-data-here")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT)  # the trials import tests.holds
    log = new_output_file("search")
    search = launch(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *command],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=None,
    )
    wait_until(held.exists, timeout=600, child=Child(search, log), what="the second trial's hold")
    os.killpg(search.pid, signal.SIGKILL)
    search.wait(timeout=60)
    sweep_dir = sweep_dir_of(workdir)
    (killed,) = [  # the job with a checkpoint and no metrics.json
        last.parents[1]
        for last in sweep_dir.glob("*/checkpoints/last.ckpt")
        if not (last.parents[1] / "metrics.json").exists()
    ]
    url = f"sqlite:///{sweep_dir / 'study.db'}"
    before = load_study(url).get_trials()
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]

    resumed = run("train.py", *command, f"resume={sweep_dir}", cwd=workdir, PYTHONPATH=str(ROOT))
    assert resumed.returncode == 0, output(resumed)[-3000:]
    assert "resume: left running, trial 1 goes on with the same parameters" in output(resumed)
    after = load_study(url).get_trials()
    assert [t.state.name for t in after] == ["COMPLETE"] * 3  # exactly n_trials
    assert after[0].params == before[0].params and after[0].value == before[0].value  # not run again
    assert after[1].params == before[1].params  # the killed trial, with its own parameters
    assert len({tuple(sorted(t.params.items())) for t in after}) == 3  # nothing proposed twice
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["resume_action"] == "resume"
    assert metrics["resumes"][0]["step"] > 0 and metrics["epochs"] == 3
    assert after[1].value == pytest.approx(metrics["val_ppl"])
    assert sorted(after[1].intermediate_values) == [0, 1, 2]  # one report per validation, resumed too
    assert len(list(sweep_dir.glob("*/metrics.json"))) == 3


def test_two_workers_on_one_study_finish_n_trials_between_them(tmp_path, repetitive_corpus):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RNNLAB_", "HYDRA_"))}
    env["RNNLAB_DATA_DIR"] = str(tmp_path / "no-data-here")
    env["PYTHONUNBUFFERED"] = "1"
    workers, logs = [], []
    for worker in ("a", "b"):
        (tmp_path / worker).mkdir()
        command = [
            *SMALL,
            f"data.path={repetitive_corpus}",
            "trainer.max_epochs=1",
            "hydra.sweeper.n_trials=4",
            f"hydra.sweeper.storage={url}",
            f"hydra.sweep.dir={tmp_path / worker / 'sweep'}",
        ]
        logs.append(new_output_file(f"worker-{worker}"))
        command = [sys.executable, str(ROOT / "scripts" / "train.py"), *command]
        workers.append(launch(command, cwd=tmp_path / worker, env=env, stdout=logs[-1], stderr=None))
    wait_all(workers, timeout=600)
    logs = [log.read_text() for log in logs]
    assert [worker.returncode for worker in workers] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    trials = load_study(url).get_trials()
    finished = [t for t in trials if not t.user_attrs.get("surplus")]
    assert [t.number for t in finished] == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in finished)
    jobs = [len(list((tmp_path / w / "sweep").glob("*/metrics.json"))) for w in ("a", "b")]
    assert sum(jobs) == 4 and all(jobs), jobs  # both workers ran trials


# One case through the command line, as a user meets it; every check is tested in-process in
# tests/sweeps/test_search_check.py.
@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["modle.lr=choice(1,2)"], "modle.lr is searched but is not a key of the config")],
)
def test_bad_search_settings_are_refused_in_one_line_before_anything_is_written(
    workdir, repetitive_corpus, overrides, message
):
    result = run("train.py", *SMALL, f"data.path={repetitive_corpus}", *overrides, cwd=workdir)
    assert result.returncode == 2, output(result)[-2000:]
    assert result.stderr.strip().splitlines() == [result.stderr.strip().splitlines()[0]]
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert not (workdir / "outputs").exists()


def test_resume_and_study_name_mismatches_are_refused(workdir, repetitive_corpus, tmp_path):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    optuna.create_study(study_name="lm_optuna", storage=url, direction="maximize")
    common = [*SMALL, f"data.path={repetitive_corpus}"]
    result = run("train.py", *common, f"hydra.sweeper.storage={url}", cwd=workdir)
    assert result.returncode == 2 and "already exists to maximize, not minimize" in result.stderr
    assert not (workdir / "outputs").exists()

    # resume= on the folder of a plain sweep, or of a search of another study
    plain = workdir / "outputs" / "multirun" / "x" / "y"
    plain.mkdir(parents=True)
    (plain / "sweep_command.yaml").write_text("overrides: []\n")
    result = run("train.py", *common, f"resume={plain}", cwd=workdir)
    assert result.returncode == 2 and "was swept by another command" in result.stderr
    other = workdir / "outputs" / "multirun" / "x" / "z"
    other.mkdir(parents=True)
    shutil.copy(tmp_path / "other.db", other / "study.db")
    (other / "sweep_command.yaml").write_text(json.dumps({"overrides": common}))
    result = run("train.py", *common, "hydra.sweeper.study_name=mine", f"resume={other}", cwd=workdir)
    assert result.returncode == 2 and "holds only 'lm_optuna', not 'mine'" in result.stderr
    assert sorted(p.name for p in other.iterdir()) == ["study.db", "sweep_command.yaml"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_the_dashboard_shows_the_study_and_its_trials_in_a_browser(tmp_path):
    dashboard = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    assert dashboard, "optuna-dashboard is in the sweep extra"
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="dashboard_check", storage=url)
    for value in (3.0, 2.0, 4.0):
        trial = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(0.001, 0.1)})
        study.tell(trial, value)
    best = study.best_trial
    study_id = optuna.storages.RDBStorage(url).get_study_id_from_name("dashboard_check")
    port = free_port()
    server = subprocess.Popen(
        [dashboard, url, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import urllib.request

        deadline = time.monotonic() + 60
        served = b""
        while time.monotonic() < deadline and not served:
            try:
                served = urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard", timeout=2).read()
            except OSError:
                time.sleep(0.5)
        assert served and b"dashboard_check" not in served  # the page draws the study with its script
        page = rendered_page(f"http://127.0.0.1:{port}/dashboard/studies/{study_id}", tmp_path, 15000, 120)
    finally:
        server.terminate()
        server.wait(timeout=30)
    dom = page.stdout
    assert f"dashboard_check (id={study_id})" in dom, dom[-2000:]
    assert f"Best Trial (number={best.number})" in dom  # the trials, read from the storage
    assert f"optimizer.lr: {best.params['optimizer.lr']}" in dom


def test_joblib_workers_run_a_batch_of_trials_that_report_through_the_storage(workdir, repetitive_corpus):
    if not module_installed("hydra_plugins.hydra_joblib_launcher"):
        pytest.skip('the joblib launcher is not installed: pip install -e ".[cluster]"')
    result = run(
        "train.py",
        *SMALL,
        f"data.path={repetitive_corpus}",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=2",
        "trainer.max_epochs=2",
        cwd=workdir,
    )
    assert result.returncode == 0, output(result)[-3000:]
    assert "is launching 2 jobs" in output(result)  # one batch of two trials
    trials = load_study(f"sqlite:///{sweep_dir_of(workdir) / 'study.db'}").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:  # reported from the worker processes, after each validation
        assert sorted(trial.intermediate_values) == [0, 1]
        assert trial.intermediate_values[1] == pytest.approx(trial.value)
