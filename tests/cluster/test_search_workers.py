"""`sbatch --array=0-2 cluster/search_workers.sbatch` on a live SLURM cluster: three workers started
together on a new study (PostgreSQL, or Optuna's journal file) run its six trials between them, each
once, every worker at least one; a worker cancelled in the middle of a trial and resubmitted takes that
trial over from its checkpoint, and the study still holds six."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnlab.search.study import open_storage
from tests.cluster.conftest import Cluster
from tests.cluster.test_preemption import checkpoint_step, user_folder
from tests.holds import workers_together
from tests.project import ROOT, SMALL_SEARCH, write_repetitive_corpus

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm_cluster")]

optuna = pytest.importorskip("optuna", reason='the sweep extra is not installed: pip install -e ".[sweep]"')

SCRIPT = ROOT / "cluster" / "search_workers.sbatch"
WORKERS, TRIALS, STOPPED = 3, 6, 1  # array tasks 0-2; task 1 is cancelled in its first trial
SEARCH = [*SMALL_SEARCH, f"hydra.sweeper.n_trials={TRIALS}", "trainer.max_epochs=3"]


def storage(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A new study storage: an empty PostgreSQL database, or a journal file not yet written."""
    if kind == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"journal://{tmp_path / 'study.log'}"


def worker_of(trial, search: Path) -> str | None:
    """`worker-N`, whose sweep folder holds the trial's run folder (None: its run has not started)."""
    run_dir = trial.user_attrs.get("run_dir")
    return None if run_dir is None else Path(run_dir).relative_to(search).parts[0]


@pytest.mark.parametrize("kind", ["postgresql", "journal"])
def test_an_array_of_workers_runs_each_trial_once_and_a_cancelled_worker_resubmitted_finishes_its_trial(
    kind, on_cluster: Cluster, tmp_path: Path, request, monkeypatch
):
    url = storage(kind, tmp_path, request)
    corpus = write_repetitive_corpus(tmp_path / "corpus.txt")
    work = user_folder(tmp_path / "work")
    search = work / "outputs" / "search"
    together = tmp_path / "together"
    together.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the jobs import tests.holds
    arguments = [
        str(search),
        *SEARCH,
        f"data.path={corpus}",
        f"hydra.sweeper.storage={url}",
        *workers_together(together, WORKERS, stop_task=STOPPED),
    ]
    # --oversubscribe: three one-CPU workers on the local cluster's 2 CPUs
    sbatch = ["sbatch", "--parsable", "--oversubscribe", f"--chdir={work}"]
    job = on_cluster.command(*sbatch, f"--array=0-{WORKERS - 1}", str(SCRIPT), *arguments).strip()
    stopped = f"{job}_{STOPPED}"
    output = work / f"slurm-{stopped}.out"
    on_cluster.wait_for(
        together.with_name("together-stopped-task").exists,
        job,
        timeout=300,
        what=f"worker {STOPPED} in the middle of its first trial",
        output=output,
    )
    on_cluster.command("scancel", stopped)  # SIGTERM: the trial saves at the end of the batch in hand
    on_cluster.wait_until_done(stopped, timeout=120)

    study = optuna.load_study(study_name="lm_optuna", storage=open_storage(url))
    running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))  # the other workers' too
    left_running = [t for t in running if worker_of(t, search) == f"worker-{STOPPED}"]
    assert len(left_running) == 1, output.read_text()[-3000:]
    left = left_running[0]
    left_dir = Path(left.user_attrs["run_dir"])
    saved = checkpoint_step(left_dir / "checkpoints" / "interrupted.ckpt")
    assert saved is not None and saved > checkpoint_step(left_dir / "checkpoints" / "last.ckpt")

    again = on_cluster.command(*sbatch, f"--array={STOPPED}", str(SCRIPT), *arguments).strip()
    on_cluster.wait_until_done(job, timeout=300)
    on_cluster.wait_until_done(again, timeout=300)

    logs = "\n".join(p.read_text()[-2000:] for p in sorted(work.glob("slurm-*.out")))
    trials = [t for t in study.get_trials() if not t.user_attrs.get("surplus")]
    assert [t.number for t in trials] == list(range(TRIALS)), logs
    assert all(t.state.name == "COMPLETE" for t in trials), ([t.state.name for t in trials], logs)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == TRIALS  # no parameters twice
    by_worker = {f"worker-{n}": [] for n in range(WORKERS)}
    for trial in trials:
        by_worker[worker_of(trial, search)].append(trial.number)
    print(f"{kind}: trials by worker {by_worker}; trial {left.number} cancelled at step {saved}")  # pytest -s
    assert all(by_worker.values()), by_worker  # every worker ran trials
    for name, numbers in by_worker.items():  # one run folder per trial, in its worker's sweep folder
        assert len(list((search / name).glob("*/metrics.json"))) == len(numbers), name

    resumed = json.loads((left_dir / "metrics.json").read_text())
    assert resumed["status"] == "completed" and resumed["epochs"] == 3
    assert [(r["checkpoint"], r["step"]) for r in resumed["resumes"]] == [("interrupted.ckpt", saved)]
    assert study.trials[left.number].value == pytest.approx(resumed["val_ppl"])
    took_over = (work / f"slurm-{again}_{STOPPED}.out").read_text()
    assert f"resume: left running, trial {left.number} goes on" in took_over
