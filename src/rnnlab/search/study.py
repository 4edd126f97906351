"""The Optuna study of a search: where it is stored, how it is opened and checked, how its trials are
seeded, and what it leaves in the sweep folder (`optimization_results.yaml`, figures).

The study lives in an Optuna RDB storage: by default SQLite in the sweep folder (`study.db`), or any
URL in `hydra.sweeper.storage` (PostgreSQL for workers on several machines). Everything a search
knows is in it, so a killed search resumes from it and several processes can share it.
optuna is imported inside the functions: composing configs stays fast.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
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


def storage_url(storage: str | None, sweep_dir: Path) -> str:
    return storage or f"sqlite:///{Path(sweep_dir).resolve() / STUDY_DB}"


def open_storage(url: str) -> Any:
    """The RDB storage at `url`; one that cannot be opened is refused in one line."""
    import optuna

    # Several processes may write one SQLite file (workers, jobs reporting): wait for its lock.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    reason = ""
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine)
        except Exception as error:  # sqlalchemy's or a driver's, whichever the URL meets
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            # Workers started together may race to create the tables of a new database (a table that
            # already exists, a lock, or the schema version written twice).
            racing = ("already exists", "locked", "UNIQUE constraint failed")
            if not any(sign in reason for sign in racing) or attempt == 4:
                break
            time.sleep(1 + attempt)
    raise UserError(
        f"hydra.sweeper.storage={url} cannot be opened ({reason}); give an Optuna RDB URL, "
        "e.g. sqlite:////abs/path/study.db or postgresql://user:pass@host/db"
    )


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
