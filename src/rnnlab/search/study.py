"""The Optuna study of a search: where it is stored, how it is opened and checked, how its trials are
seeded, and what it leaves in the sweep folder (`optimization_results.yaml`, figures).

The study lives in an Optuna storage: by default SQLite in the sweep folder (`study.db`), or the one
`hydra.sweeper.storage` names: an RDB URL (PostgreSQL for workers on several machines) or
`journal:///path/study.log`, Optuna's journal file (workers on a shared filesystem, no database
server). Everything a search knows is in it, so a killed search resumes from it and several
processes can share it, also when they all open a new one at once.
optuna is imported inside the functions: composing configs stays fast.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from rnnlab.errors import UserError

log = logging.getLogger(__name__)

STUDY_DB = "study.db"
RESULTS = "optimization_results.yaml"
# user attr of a trial asked after other workers had taken the last places of the budget
SURPLUS = "surplus"
# How a search's job finds its trial (set by the sweeper through `hydra.job.env_set`)
ENV_STORAGE = "RNNLAB_OPTUNA_STORAGE"
ENV_STUDY = "RNNLAB_OPTUNA_STUDY"
ENV_TRIAL = "RNNLAB_OPTUNA_TRIAL"


# `journal://` + a path: Optuna's JournalStorage on a JournalFileBackend (journal:///abs/study.log,
# or journal://study.log relative to the folder the command runs in)
JOURNAL = "journal://"
# A bare `postgresql://` URL means the driver the sweep extra installs (psycopg 3), whatever
# SQLAlchemy's default driver for the dialect is (psycopg2 up to SQLAlchemy 2.0, psycopg from 2.1).
POSTGRESQL, POSTGRESQL_DRIVER = "postgresql://", "postgresql+psycopg://"
# pg_advisory_lock's key for creating a study database's tables (any fixed 64-bit number)
SCHEMA_LOCK_KEY = 0x726E6E6C6162  # "rnnlab"
# What a second process meets when it creates the tables of a new SQLite (or MySQL) database at the
# same moment as another: a table that already exists, a lock, or the schema version written twice.
CREATION_RACE = ("already exists", "locked", "UNIQUE constraint failed", "Duplicate entry")


def storage_url(storage: str | None, sweep_dir: Path) -> str:
    """The search's storage URL: the sweep folder's SQLite file by default; a journal's path made
    absolute (the jobs and the workers then name the same file wherever they run)."""
    if storage is None:
        return f"sqlite:///{Path(sweep_dir).resolve() / STUDY_DB}"
    if storage.startswith(JOURNAL):
        return JOURNAL + str(journal_path(storage))
    return storage


def journal_path(url: str) -> Path:
    path = url[len(JOURNAL) :]
    if not path:
        raise UserError(f"hydra.sweeper.storage={url} names no file: give journal:///abs/path/study.log")
    return Path(os.path.abspath(os.path.expanduser(path)))


def driver_url(url: str) -> str:
    """`url` with PostgreSQL's driver named (psycopg 3, in the sweep extra) when it names none."""
    return POSTGRESQL_DRIVER + url[len(POSTGRESQL) :] if url.startswith(POSTGRESQL) else url


def dashboard_command(url: str) -> str:
    """The optuna-dashboard command for a storage (it takes a journal as a plain file path)."""
    target = str(journal_path(url)) if url.startswith(JOURNAL) else driver_url(url)
    return f"optuna-dashboard {shlex.quote(target)}"


def open_storage(url: str) -> Any:
    """The storage at `url`; one that cannot be opened is refused in one line.

    Any number of processes may open a new storage at once: only one creates a new database's
    tables (PostgreSQL: under an advisory lock; SQLite: the others retry), and a journal file needs
    nothing created."""
    try:
        if url.startswith(JOURNAL):
            return open_journal(journal_path(url))
        if url.startswith(("postgresql:", "postgresql+")):
            with schema_lock(driver_url(url)):
                return open_rdb(driver_url(url))
        return open_rdb(url)
    except UserError:
        raise
    except ImportError as error:
        raise UserError(missing_driver(url, error)) from None
    except Exception as error:  # sqlalchemy's or a driver's, whichever the URL meets
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(
            f"hydra.sweeper.storage={url} cannot be opened ({reason}); give an Optuna RDB URL "
            "(e.g. sqlite:////abs/path/study.db or postgresql://user@host/db) or a journal file "
            "(journal:///abs/path/study.log)"
        ) from None


def open_journal(path: Path) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if not path.parent.is_dir():
        raise UserError(
            f"hydra.sweeper.storage={JOURNAL}{path}: the folder {path.parent} does not exist; make it first"
        )
    # The default lock (a symlink beside the file) is the one optuna-dashboard takes too; it works
    # on NFS, where fcntl locks may not.
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def open_rdb(url: str) -> Any:
    import optuna
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    # Several processes may write one SQLite file (workers, jobs reporting): wait for its lock.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    attempts = 5
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine)
        except (SQLAlchemyError, StorageInternalError) as error:
            said = f"{error} {error.__cause__ or ''}"
            if attempt == attempts - 1 or not any(sign in said for sign in CREATION_RACE):
                raise
            time.sleep(1 + attempt)  # the other process is creating the tables: they exist soon
    raise AssertionError("not reached")


@contextmanager
def schema_lock(url: str) -> Iterator[None]:
    """PostgreSQL: one process at a time creates (or checks) a study database's tables.

    Without it, workers started together on a new database all run CREATE TABLE, and all but one
    stop on `duplicate key value violates unique constraint "pg_type_typname_nsp_index"`."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(
                    sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY}
                )
                connection.commit()
    finally:
        engine.dispose()


def missing_driver(url: str, error: ImportError) -> str:
    cause = error.__cause__ if isinstance(error.__cause__, ImportError) else error
    module = getattr(cause, "name", None) or str(cause)
    how = {
        "psycopg": 'pip install -e ".[sweep]" (it installs psycopg[binary])',
        "psycopg2": "pip install psycopg2-binary, or write postgresql:// (psycopg 3, in the sweep extra)",
    }.get(module, f"install the package that provides {module}")
    return f"hydra.sweeper.storage={url} needs the database driver {module}, which is not installed: {how}"


def study_names(storage: Any) -> list[str]:
    import optuna

    return optuna.study.get_all_study_names(storage)


def check_study(storage: Any, url: str, name: str, direction: str, resume: str | None) -> None:
    """A resumed search finds its study; an existing study of that name has the search's direction."""
    names = study_names(storage)
    if resume and name not in names:
        held = f"only {', '.join(repr(n) for n in names)}" if names else "no study"
        raise UserError(
            f"resume={resume}: its storage {url} holds {held}, not '{name}': it is another search's "
            "folder; resume it with the command that started it"
        )
    if name in names:
        study_id = storage.get_study_id_from_name(name)
        existing = storage.get_study_directions(study_id)[0].name.lower()
        if existing != direction:
            raise UserError(
                f"study '{name}' in {url} already exists to {existing}, not {direction}; "
                "give another hydra.sweeper.study_name or the same direction"
            )


def trial_id(storage: Any, study_name: str, number: int) -> int:
    study_id = storage.get_study_id_from_name(study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def counts(study: Any) -> dict[str, int]:
    """Finished trials by state (a surplus trial, asked after the budget was taken, is not counted)."""
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS)]
    return {
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
    }


def record_optuna_version(study: Any) -> None:
    """The Optuna version that proposes a study's trials, kept in the study (`optuna_version`): a seeded
    search proposes the same trials only on the same major version (5 changed TPE's defaults). A
    worker on another version than the study's first says so."""
    import optuna

    first = study.user_attrs.get("optuna_version")
    if first is None:
        study.set_user_attr("optuna_version", optuna.__version__)
    elif first.split(".")[0] != optuna.__version__.split(".")[0]:
        log.warning(
            "search: this study's trials were proposed by optuna %s, this worker runs %s; "
            "its proposals will differ from a search run on one version",
            first,
            optuna.__version__,
        )


def write_results(study: Any, sweep_dir: Path) -> dict[str, Any]:
    """`optimization_results.yaml`: the best trial's parameters and value, and the counts."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    found = {k: v for k, v in counts(study).items() if k != "running"}
    import optuna

    results: dict[str, Any] = {
        "name": study.study_name,
        "direction": study.direction.name.lower(),
        "optuna_version": optuna.__version__,
    }
    if complete:
        best = study.best_trial
        results.update(best_trial=best.number, best_params=dict(best.params), best_value=best.value)
    else:
        results.update(best_trial=None, best_params=None, best_value=None)
    results["trials"] = found
    (Path(sweep_dir) / RESULTS).write_text(yaml.safe_dump(results, sort_keys=False))
    return results


def draw_figures(study: Any, sweep_dir: Path) -> list[Path]:
    """The optimisation history, parameter importances and parallel coordinates, as PNG.

    A figure the study cannot have yet (importances need two completed trials that differ) is left
    out with one line.
    """
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        log.warning("search: no figures (no trial completed)")
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    written = []
    for name, draw in (
        ("optimization_history", plots.plot_optimization_history),
        ("param_importances", plots.plot_param_importances),
        ("parallel_coordinate", plots.plot_parallel_coordinate),
    ):
        path = Path(sweep_dir) / f"{name}.png"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the matplotlib backend is marked experimental
                axes = draw(study)
                figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
                figure.savefig(path, dpi=100, bbox_inches="tight")
                plt.close(figure)
            written.append(path)
        except Exception as error:
            log.warning(
                "search: no %s figure (%s)", name, str(error).splitlines()[0] if str(error) else error
            )
    return written


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
