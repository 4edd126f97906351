"""`SearchCheck`: before a search writes anything, its settings are checked, and bad input is refused
in one line with exit status 2.

A Hydra callback, listed first in `conf/hydra/default.yaml`, so that it runs before the sweep folder
is made. It acts only when the sweeper is rnnlab's Optuna sweeper. Checked: every key searched exists
in the config (or is a config group, or is added with `+`), every distribution is well formed, the
storage opens, a resumed folder (or journal file) holds this search's study, and an existing study
of that name has the search's direction.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rnnlab.errors import UserError
from rnnlab.search.search_space import SearchSpace, search_space

SWEEPER = "hydra_plugins.rnnlab_optuna_sweeper.sweeper.RnnlabOptunaSweeper"
DIRECTIONS = ("minimize", "maximize")
_ABSENT = object()


def is_search(config: DictConfig) -> bool:
    return OmegaConf.select(config, "hydra.sweeper._target_", default=None) == SWEEPER


def check_keys(config: DictConfig, space: SearchSpace, params: dict[str, Any] | None) -> None:
    groups = set(OmegaConf.select(config, "hydra.runtime.choices", default={}) or {})
    for key in [*space.dimensions, *(params or {})]:
        if key.startswith("+") or key in groups:
            continue
        if OmegaConf.select(config, key, default=_ABSENT, throw_on_missing=False) is _ABSENT:
            raise UserError(
                f"{key} is searched but is not a key of the config (nor a config group); "
                "check its spelling (python scripts/train.py --cfg job lists the keys), or add it with +"
            )


def search_settings(config: DictConfig) -> tuple[SearchSpace, str]:
    """The search space and the storage URL, checked; raises `UserError` for bad input."""
    from rnnlab.search.study import JOURNAL, check_study, journal_path, open_storage, storage_url

    sweeper = config.hydra.sweeper
    params = OmegaConf.to_container(sweeper.params, resolve=True) if sweeper.get("params") else None
    space = search_space(params, list(config.hydra.overrides.task))
    check_keys(config, space, params)
    if not space.dimensions:
        raise UserError("the search has no dimension: give hydra.sweeper.params or choice(...)/interval(...)")
    if str(sweeper.direction) not in DIRECTIONS:
        raise UserError(f"hydra.sweeper.direction={sweeper.direction}: give minimize or maximize")
    for name in ("n_trials", "n_jobs", "max_failures"):
        if int(sweeper[name]) < 1:
            raise UserError(f"hydra.sweeper.{name}={sweeper[name]} must be at least 1")
    check_buildable(sweeper, space)
    sweep_dir = Path(config.hydra.sweep.dir)
    url = storage_url(sweeper.storage, sweep_dir)
    resume = config.get("resume")
    default_db = sweeper.storage is None
    if default_db and resume and not (sweep_dir / "study.db").is_file():
        raise UserError(
            f"resume={resume}: {sweep_dir} has no study.db: it is not the folder of an Optuna search "
            "(or its study is stored elsewhere: give hydra.sweeper.storage=URL)"
        )
    if resume and url.startswith(JOURNAL) and not journal_path(url).is_file():
        raise UserError(
            f"resume={resume}: its journal file {journal_path(url)} does not exist "
            "(give hydra.sweeper.storage the search's own journal:///path)"
        )
    if not default_db or (sweep_dir / "study.db").is_file():
        check_study(open_storage(url), url, study_name(config), str(sweeper.direction), resume)
    return space, url


def check_buildable(sweeper: DictConfig, space: SearchSpace) -> None:
    """The sampler and the pruner can be made from their settings (a job builds the pruner too)."""
    from hydra.utils import instantiate

    for name in ("sampler", "pruner"):
        node = OmegaConf.to_container(sweeper[name], resolve=True)
        if str(node.get("_target_", "")).endswith("GridSampler"):
            node["search_space"] = space.grid()  # refuses an interval
        try:
            instantiate(node)
        except Exception as error:
            cause = error.__cause__ or error
            raise UserError(
                f"hydra.sweeper.{name} ({node.get('_target_')}): {str(cause).rstrip('.')} "
                "(its settings: --cfg hydra)"
            ) from None


def study_name(config: DictConfig) -> str:
    return str(config.hydra.sweeper.get("study_name") or "rnnlab")


class SearchCheck(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_search(config):
            return
        try:
            search_settings(config)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
