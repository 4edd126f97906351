"""The sweeper's settings, and its sampler and pruner choices, in Hydra's ConfigStore.

`hydra/sweeper: rnnlab_optuna`, `hydra/sweeper/sampler: tpe | random | grid | cmaes` and
`hydra/sweeper/pruner: none | median | successive_halving | hyperband | threshold`. A sampler or pruner is an
Optuna class with its arguments; any other argument of that class can be added with `+`.
"""

# no `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules, where
# dataclasses cannot resolve string annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class RnnlabOptunaSweeperConf:
    _target_: str = "hydra_plugins.rnnlab_optuna_sweeper.sweeper.RnnlabOptunaSweeper"
    _recursive_: bool = False  # the sampler and pruner are built by the sweeper (and the jobs)
    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}, {"pruner": "none"}])
    direction: str = "minimize"
    study_name: str | None = None  # null: rnnlab
    storage: str | None = None  # null: sqlite:///<sweep_dir>/study.db
    n_trials: int = 20  # finished trials (completed, pruned or failed) the study holds at the end
    n_jobs: int = 1  # trials asked at once and launched together (parallel with hydra/launcher=joblib)
    max_failures: int = 5  # failed trials after which the search stops
    sampler: Any = MISSING
    pruner: Any = MISSING
    params: dict[str, Any] | None = None


SAMPLERS = {
    "tpe": {
        "_target_": "optuna.samplers.TPESampler",
        "seed": None,
        "n_startup_trials": 10,
        # Written down, not left to Optuna's defaults, which version 5 changed (both became true): a
        # seeded search then proposes the same trials for as long as rnnlab pins optuna's major version.
        "multivariate": False,
        "constant_liar": False,
    },
    "random": {"_target_": "optuna.samplers.RandomSampler", "seed": None},
    "grid": {"_target_": "optuna.samplers.GridSampler", "seed": None},  # the grid: params' choices and ranges
    "cmaes": {
        "_target_": "optuna.samplers.CmaEsSampler",
        "seed": None,
        "n_startup_trials": 1,
        "sigma0": None,
    },
}
PRUNERS = {
    "none": {"_target_": "optuna.pruners.NopPruner"},
    "median": {
        "_target_": "optuna.pruners.MedianPruner",
        "n_startup_trials": 5,  # completed trials before any is pruned
        "n_warmup_steps": 0,  # validations of a trial before it may be pruned
        "interval_steps": 1,
    },
    "successive_halving": {
        "_target_": "optuna.pruners.SuccessiveHalvingPruner",
        "min_resource": "auto",
        "reduction_factor": 4,
        "min_early_stopping_rate": 0,
    },
    # prunes a trial whose value leaves [lower, upper] (e.g. a perplexity that is hopeless already)
    "threshold": {
        "_target_": "optuna.pruners.ThresholdPruner",
        "lower": None,
        "upper": None,
        "n_warmup_steps": 0,
    },
    "hyperband": {
        "_target_": "optuna.pruners.HyperbandPruner",
        "min_resource": 1,
        "max_resource": "auto",
        "reduction_factor": 3,
    },
}

store = ConfigStore.instance()
store.store(group="hydra/sweeper", name="rnnlab_optuna", node=RnnlabOptunaSweeperConf, provider="rnnlab")
for name, node in SAMPLERS.items():
    store.store(group="hydra/sweeper/sampler", name=name, node=node, provider="rnnlab")
for name, node in PRUNERS.items():
    store.store(group="hydra/sweeper/pruner", name=name, node=node, provider="rnnlab")
