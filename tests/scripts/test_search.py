"""`hparams_search=...`: rnnlab's Optuna sweeper through train.py's main in-process (failed trials
recorded and the search going on, max_failures, pruning, bad input, what a finished search says), and
as processes where a process is the point (kill -9 and resume=, two workers on one study, joblib's
worker processes), and the dashboard in a browser."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnlab.search.study import dashboard_command, open_storage
from tests.holds import hold_as_epoch_starts
from tests.project import (
    ROOT,
    SMALL_SEARCH,
    Child,
    Finished,
    call,
    chromium,
    launch,
    module_installed,
    new_output_file,
    rendered_page,
    run,
    wait_all,
    wait_until,
)

pytestmark = pytest.mark.slow  # whole searches

optuna = pytest.importorskip("optuna", reason='the sweep extra is not installed: pip install -e ".[sweep]"')


def load_study(url, name: str = "lm_optuna"):
    return optuna.load_study(study_name=name, storage=url)


def states(study) -> list[str]:
    return [trial.state.name for trial in study.get_trials()]


def sweep_dir_of(workdir: Path) -> Path:
    (found,) = list((workdir / "outputs" / "multirun").glob("*/*"))
    return found


def output(result: Finished) -> str:
    return result.stdout + result.stderr


SHARES_GRADED_SEARCH = pytest.mark.xdist_group("graded_search")  # one worker runs it, once


@pytest.fixture(scope="session")
def graded_search(tmp_path_factory) -> tuple[Finished, Path]:
    """A grid over four learning rates: one trains, one is hopeless (pruned by a threshold on its
    first validation), one raises (a negative rate), one ends with an infinite perplexity."""
    from tests.project import write_repetitive_corpus

    workdir = tmp_path_factory.mktemp("graded")
    corpus = write_repetitive_corpus(workdir.parent / f"{workdir.name}-corpus.txt")
    result = call(
        "train.py",
        *SMALL_SEARCH,
        f"data.path={corpus}",
        "model.dropout=0.0",
        "optimizer.lr=choice(0.01,1e-7,-1,1e30)",
        "hydra/sweeper/sampler=grid",
        "hydra/sweeper/pruner=threshold",
        "hydra.sweeper.pruner.upper=15",  # a perplexity above 15 after one validation is hopeless here
        "trainer.max_epochs=2",
        cwd=workdir,
        capfd=None,
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
    import optuna

    assert f"optuna_version: {optuna.__version__}" in results  # what proposed the trials, in both places
    assert study.user_attrs["optuna_version"] == optuna.__version__
    for figure in ("optimization_history", "param_importances", "parallel_coordinate"):
        assert (sweep_dir / f"{figure}.png").stat().st_size > 5000
    assert "sweep done: 2 of 4 jobs failed" in output(result)
    assert "Traceback" not in output(result)
    # what to do next: the folder, compare, tensorboard, and the dashboard on the study's storage
    for line in (
        f"sweep dir: {sweep_dir}",
        f"compare its runs: python scripts/compare.py {sweep_dir}",
        f"look at it: tensorboard --logdir {sweep_dir}",
        f"the study: optuna-dashboard sqlite:///{sweep_dir / 'study.db'}",
    ):
        assert line in output(result), output(result)[-2000:]


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


def test_max_failures_stops_a_search_whose_trials_only_fail(workdir, repetitive_corpus, capfd):
    result = call(
        "train.py",
        *SMALL_SEARCH,
        f"data.path={repetitive_corpus}",
        "optimizer.lr=-1",  # fixes the searched rate: every trial raises
        "hydra.sweeper.n_trials=10",
        "hydra.sweeper.max_failures=2",
        cwd=workdir,
        capfd=capfd,
    )
    assert result.returncode == 1
    assert "search stopped: 2 trials failed (hydra.sweeper.max_failures=2)" in output(result)
    study = load_study(f"sqlite:///{sweep_dir_of(workdir) / 'study.db'}")
    assert states(study) == ["FAIL", "FAIL"]


# journal: Optuna's journal file, named relative to the folder the command runs in
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_killed_search_resumes_its_study_and_its_running_trial(kind, workdir, repetitive_corpus, tmp_path):
    # The second trial holds (tests/holds.py) as its second epoch starts, its first one checkpointed,
    # and the search is killed there: the same point on any machine, however fast or loaded.
    held = tmp_path / "held"
    command = [
        *SMALL_SEARCH,
        f"data.path={repetitive_corpus}",
        "hydra.sweeper.n_trials=3",
        "trainer.max_epochs=3",
        *(["hydra.sweeper.storage=journal://study.log"] if kind == "journal" else []),
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
    url = f"sqlite:///{sweep_dir / 'study.db'}" if kind == "sqlite" else f"journal://{workdir / 'study.log'}"
    before = load_study(open_storage(url)).get_trials()
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]

    resumed = run("train.py", *command, f"resume={sweep_dir}", cwd=workdir, PYTHONPATH=str(ROOT))
    assert resumed.returncode == 0, output(resumed)[-3000:]
    assert "resume: left running, trial 1 goes on with the same parameters" in output(resumed)
    after = load_study(open_storage(url)).get_trials()
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


def trials_by_worker(trials, sweep_dirs: dict[str, Path]) -> dict[str, list[str]]:
    """'worker: trial number STATE' for each trial a worker trained (its run folder is in its sweep)."""
    found: dict[str, list[str]] = {name: [] for name in sweep_dirs}
    for trial in trials:
        run_dir = Path(trial.user_attrs.get("run_dir", "/"))
        owner = next(name for name, sweep in sweep_dirs.items() if sweep in run_dir.parents)
        found[owner].append(f"{trial.number} {trial.state.name}")
    return found


# Two workers on one machine, on a new SQLite study. On PostgreSQL and Optuna's journal file, three
# workers run as a SLURM job array (tests/cluster/test_search_workers.py), as the recipe runs them.
def test_workers_started_together_on_a_new_study_finish_n_trials_between_them(tmp_path, repetitive_corpus):
    n_workers, n_trials = 2, 4
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RNNLAB_", "HYDRA_"))}
    env["RNNLAB_DATA_DIR"] = str(tmp_path / "no-data-here")
    env["PYTHONUNBUFFERED"] = "1"
    names = ("a", "b", "c")[:n_workers]
    workers, logs = [], []
    for worker in names:
        (tmp_path / worker).mkdir()
        command = [
            *SMALL_SEARCH,
            f"data.path={repetitive_corpus}",
            "trainer.max_epochs=1",
            f"hydra.sweeper.n_trials={n_trials}",
            f"hydra.sweeper.storage={url}",
            f"hydra.sweep.dir={tmp_path / worker / 'sweep'}",
        ]
        logs.append(new_output_file(f"worker-{worker}"))
        command = [sys.executable, str(ROOT / "scripts" / "train.py"), *command]
        workers.append(launch(command, cwd=tmp_path / worker, env=env, stdout=logs[-1], stderr=None))
    wait_all(workers, timeout=600)
    logs = [log.read_text() for log in logs]
    assert [worker.returncode for worker in workers] == [0] * n_workers, "\n".join(
        log[-2000:] for log in logs
    )
    trials = load_study(open_storage(url)).get_trials()
    finished = [t for t in trials if not t.user_attrs.get("surplus")]
    assert [t.number for t in finished] == list(range(n_trials))
    assert all(t.state.name == "COMPLETE" for t in finished)
    assert len({tuple(sorted(t.params.items())) for t in finished}) == n_trials  # no parameters twice
    sweeps = {name: tmp_path / name / "sweep" for name in names}
    ran = trials_by_worker(finished, sweeps)
    print(f"sqlite: trials by worker {ran}")  # the transcript (pytest -s)
    jobs = {name: len(list(sweep.glob("*/metrics.json"))) for name, sweep in sweeps.items()}
    assert jobs == {name: len(ran[name]) for name in names}  # one run folder per trial, in its worker's sweep
    assert all(jobs.values()), jobs  # every worker ran trials
    assert "search: the live view: optuna-dashboard" in logs[0]


# One case through the command line, as a user meets it; every check is tested in-process in
# tests/sweeps/test_search_check.py.
@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["modle.lr=choice(1,2)"], "modle.lr is searched but is not a key of the config")],
)
def test_bad_search_settings_are_refused_in_one_line_before_anything_is_written(
    workdir, repetitive_corpus, overrides, message, capfd
):
    result = call(
        "train.py", *SMALL_SEARCH, f"data.path={repetitive_corpus}", *overrides, cwd=workdir, capfd=capfd
    )
    assert result.returncode == 2, output(result)[-2000:]
    assert result.stderr.strip().splitlines() == [result.stderr.strip().splitlines()[0]]
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert not (workdir / "outputs").exists()


def test_resume_and_study_name_mismatches_are_refused(workdir, repetitive_corpus, tmp_path, capfd):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    optuna.create_study(study_name="lm_optuna", storage=url, direction="maximize")
    common = [*SMALL_SEARCH, f"data.path={repetitive_corpus}"]
    result = call("train.py", *common, f"hydra.sweeper.storage={url}", cwd=workdir, capfd=capfd)
    assert result.returncode == 2 and "already exists to maximize, not minimize" in result.stderr
    assert not (workdir / "outputs").exists()

    # resume= on the folder of a plain sweep, or of a search of another study
    plain = workdir / "outputs" / "multirun" / "x" / "y"
    plain.mkdir(parents=True)
    (plain / "sweep_command.yaml").write_text("overrides: []\n")
    result = call("train.py", *common, f"resume={plain}", cwd=workdir, capfd=capfd)
    assert result.returncode == 2 and "was swept by another command" in result.stderr
    other = workdir / "outputs" / "multirun" / "x" / "z"
    other.mkdir(parents=True)
    shutil.copy(tmp_path / "other.db", other / "study.db")
    (other / "sweep_command.yaml").write_text(json.dumps({"overrides": common}))
    result = call(
        "train.py", *common, "hydra.sweeper.study_name=mine", f"resume={other}", cwd=workdir, capfd=capfd
    )
    assert result.returncode == 2 and "holds only 'lm_optuna', not 'mine'" in result.stderr
    assert sorted(p.name for p in other.iterdir()) == ["study.db", "sweep_command.yaml"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def served_json(url: str, server: subprocess.Popen, timeout: float = 60) -> dict:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            return json.loads(urllib.request.urlopen(url, timeout=2).read())
        except OSError:
            assert server.poll() is None, f"the dashboard exited with status {server.returncode}"
            assert time.monotonic() < deadline, f"the dashboard did not answer {url}"
            time.sleep(0.5)


# SQLite's command is its URL unchanged (the browser test below runs it)
@pytest.mark.parametrize(
    "kind", [pytest.param("postgresql", marks=pytest.mark.xdist_group("postgres")), "journal"]
)
def test_the_dashboard_command_a_search_prints_serves_its_study(kind, tmp_path, request):
    """The command from `dashboard_command` (the sweeper's "live view" line), run as printed."""
    journal = f"journal://{tmp_path / 'study.log'}"
    url = request.getfixturevalue("postgres_url") if kind == "postgresql" else journal
    study = optuna.create_study(study_name="dashboard_check", storage=open_storage(url))
    for value in (3.0, 2.0, 4.0):
        trial = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(0.001, 0.1)})
        study.tell(trial, value)
    command = shlex.split(dashboard_command(url))
    command[0] = shutil.which(command[0], path=str(Path(sys.executable).parent))
    port = free_port()
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        api = f"http://127.0.0.1:{port}/api/studies"
        studies = served_json(api, server)["study_summaries"]
        (listed,) = [s for s in studies if s["study_name"] == "dashboard_check"]
        detail = served_json(f"{api}/{listed['study_id']}", server)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert [(t["number"], t["state"], t["values"]) for t in detail["trials"]] == [
        (0, "Complete", [3.0]),
        (1, "Complete", [2.0]),
        (2, "Complete", [4.0]),
    ]


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


def test_joblib_workers_run_a_batch_of_trials_that_report_through_the_storage(
    workdir, repetitive_corpus, capfd
):
    """The search in this process; joblib's workers, which train the trials, are processes of their own."""
    if not module_installed("hydra_plugins.hydra_joblib_launcher"):
        pytest.skip('the joblib launcher is not installed: pip install -e ".[cluster]"')
    result = call(
        "train.py",
        *SMALL_SEARCH,
        f"data.path={repetitive_corpus}",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=2",
        "trainer.max_epochs=2",
        cwd=workdir,
        capfd=capfd,
    )
    assert result.returncode == 0, output(result)[-3000:]
    assert "is launching 2 jobs" in output(result)  # one batch of two trials
    trials = load_study(f"sqlite:///{sweep_dir_of(workdir) / 'study.db'}").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:  # reported from the worker processes, after each validation
        assert sorted(trial.intermediate_values) == [0, 1]
        assert trial.intermediate_values[1] == pytest.approx(trial.value)
