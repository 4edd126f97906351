"""Where a search's study is stored (`rnnlab.search.study`): storage URLs (a journal file's path, the
PostgreSQL driver), the dashboard command for each kind, a missing driver refused in one line, and
several processes opening a NEW storage at the same moment (PostgreSQL, SQLite, journal file): all of
them open it and share one study."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rnnlab.errors import UserError
from rnnlab.search import study as study_module
from rnnlab.search.study import dashboard_command, driver_url, open_storage, storage_url
from tests.project import ROOT

optuna = pytest.importorskip("optuna", reason='the sweep extra is not installed: pip install -e ".[sweep]"')

SHARES_POSTGRES = pytest.mark.xdist_group("postgres")  # one pytest worker starts the server, once


def test_a_journal_url_names_a_file_made_absolute_against_the_folder_the_command_runs_in(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert storage_url("journal://studies/s.log", tmp_path / "sweep") == f"journal://{tmp_path}/studies/s.log"
    assert storage_url("journal:///abs/s.log", tmp_path / "sweep") == "journal:///abs/s.log"
    assert storage_url(None, tmp_path / "sweep") == f"sqlite:///{tmp_path / 'sweep' / 'study.db'}"
    with pytest.raises(UserError, match="names no file"):
        storage_url("journal://", tmp_path)


def test_a_bare_postgresql_url_gets_the_driver_the_sweep_extra_installs():
    assert driver_url("postgresql://me@db/optuna") == "postgresql+psycopg://me@db/optuna"
    assert driver_url("postgresql+psycopg2://me@db/optuna") == "postgresql+psycopg2://me@db/optuna"
    assert driver_url("sqlite:///x.db") == "sqlite:///x.db"


def test_the_dashboard_command_names_each_storage_as_optuna_dashboard_reads_it():
    assert dashboard_command("sqlite:////a/study.db") == "optuna-dashboard sqlite:////a/study.db"
    assert dashboard_command("journal:///a b/s.log") == "optuna-dashboard '/a b/s.log'"  # a path
    assert dashboard_command("postgresql://me@db/o") == "optuna-dashboard postgresql+psycopg://me@db/o"


@pytest.mark.parametrize(
    ("url", "driver", "advice"),
    [
        ("postgresql://me@127.0.0.1:1/optuna", "psycopg", 'pip install -e ".[sweep]"'),
        ("postgresql+psycopg2://me@127.0.0.1:1/optuna", "psycopg2", "pip install psycopg2-binary"),
    ],
)
def test_a_missing_postgresql_driver_is_refused_in_one_line_that_says_what_to_install(
    url, driver, advice, monkeypatch
):
    monkeypatch.setitem(sys.modules, driver, None)  # `import <driver>` now raises ImportError
    with pytest.raises(UserError) as refused:
        open_storage(url)
    message = str(refused.value)
    assert f"needs the database driver {driver}, which is not installed" in message, message
    assert advice in message and "\n" not in message


def test_a_journal_in_a_folder_that_does_not_exist_is_refused(tmp_path):
    with pytest.raises(UserError, match="does not exist; make it first"):
        open_storage(f"journal://{tmp_path / 'no' / 's.log'}")
    assert not (tmp_path / "no").exists()


def test_a_journal_file_keeps_the_study_between_openings(tmp_path):
    url = f"journal://{tmp_path / 's.log'}"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(trial, 0.5)
    again = optuna.load_study(study_name="s", storage=open_storage(url))
    assert [(t.number, t.state.name, t.value) for t in again.get_trials()] == [(0, "COMPLETE", 0.5)]
    assert study_module.study_names(open_storage(url)) == ["s"]


# Each process opens the storage at the same moment (they sleep until a shared start time), creates
# the study or loads it, and runs two trials of its own.
OPEN_TOGETHER = textwrap.dedent(
    """
    import json, sys, time
    import optuna
    from rnnlab.search.study import open_storage
    url, start_at = sys.argv[1], float(sys.argv[2])
    time.sleep(max(0.0, start_at - time.time()))
    storage = open_storage(url)
    study = optuna.create_study(study_name="together", storage=storage, load_if_exists=True)
    numbers = []
    for _ in range(2):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        study.tell(trial, trial.params["x"])
        numbers.append(trial.number)
    print(json.dumps(numbers))
    """
)


def open_together(url: str, processes: int, cwd: Path) -> list[subprocess.CompletedProcess]:
    start_at = time.time() + 6  # after every process has imported optuna (2 cores, shared)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    started = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_TOGETHER, url, str(start_at)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    results = []
    for process in started:
        stdout, stderr = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return results


def check_all_opened_one_study(results: list[subprocess.CompletedProcess], url: str) -> None:
    assert [r.returncode for r in results] == [0] * len(results), "\n".join(r.stderr[-1500:] for r in results)
    numbers = sorted(n for r in results for n in json.loads(r.stdout.strip().splitlines()[-1]))
    assert numbers == list(range(2 * len(results)))  # one study, each trial number taken once
    trials = optuna.load_study(study_name="together", storage=open_storage(url)).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 2 * len(results)


@pytest.mark.slow
@SHARES_POSTGRES
def test_processes_opening_a_new_postgresql_study_together_all_open_it(postgres_url, tmp_path):
    results = open_together(postgres_url, 3, tmp_path)
    check_all_opened_one_study(results, postgres_url)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_processes_opening_a_new_file_study_together_all_open_it(kind, tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}" if kind == "sqlite" else f"journal://{tmp_path / 'new.log'}"
    results = open_together(url, 3, tmp_path)
    check_all_opened_one_study(results, url)
