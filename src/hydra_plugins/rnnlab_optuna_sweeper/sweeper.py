"""`RnnlabOptunaSweeper`: a Hydra sweeper that runs an Optuna study kept in a storage (an RDB or a
journal file, `rnnlab.search.study`).

Each round asks the study for up to `n_jobs` trials, launches them as Hydra jobs (any launcher), and
tells the study how each ended: completed with its value, pruned (its job stopped at a validation
its pruner condemned), or failed (it raised, returned NaN or ±inf, or its metrics.json says failed),
with the error text as the trial's `error` attribute. The search ends when the study holds
`n_trials` trials, or stops early after `max_failures` failed ones. Several processes on one storage
share the study; with `resume=SWEEP_DIR` the trials that folder's search left running when it was
killed go on from their checkpoints with the same parameters (other workers' running trials are left
to them). Settings are checked first by `rnnlab.search.search_check`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

# user attr of a trial: the sweep folder of the search (the worker) that asked for it
SWEEP_DIR = "sweep_dir"


class RnnlabOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = OmegaConf.create(settings)
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from rnnlab.search.search_check import search_settings, study_name

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.space, self.url = search_settings(config)  # checked before (SearchCheck); cheap again
        self.study_name = study_name(config)
        self.sweep_dir = Path(config.hydra.sweep.dir)

    # -- the study ---------------------------------------------------------------------------------
    def make_sampler(self, seed: int | None) -> Any:
        from hydra.utils import instantiate

        sampler = OmegaConf.to_container(self.settings.sampler, resolve=True)
        sampler["seed"] = seed
        if sampler["_target_"].endswith("GridSampler"):
            sampler["search_space"] = self.space.grid()
        return instantiate(sampler)

    def open_study(self) -> Any:
        import optuna

        from rnnlab.search.seeded_sampler import TrialSeededSampler
        from rnnlab.search.study import open_storage, record_optuna_version

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # rnnlab logs each trial itself
        self.storage = open_storage(self.url)
        sampler = TrialSeededSampler(self.make_sampler, self.settings.sampler.get("seed"))
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=sampler,
            direction=str(self.settings.direction),
            load_if_exists=True,
        )
        # The jobs build the pruner from the study itself, wherever they run.
        study.set_user_attr("pruner", OmegaConf.to_container(self.settings.pruner, resolve=True))
        record_optuna_version(study)
        return study

    def left_running(self, study: Any) -> list[Any]:
        """Trials this search's folder left running whose run no live process writes (taken over on
        resume). Only its own: a trial of another worker on the same study (its run folder is in that
        worker's sweep folder) may be running on another machine, where no pid of this one tells."""
        from optuna.trial import TrialState

        from rnnlab.run.lock import writer_of

        own = str(self.sweep_dir.resolve())
        left = []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner, run_dir = trial.user_attrs.get(SWEEP_DIR), trial.user_attrs.get("run_dir")
            if owner is not None and owner != own:
                continue
            if run_dir is None or writer_of(Path(run_dir)) is None:
                left.append(trial)
        return left

    # -- the search --------------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> Any:
        from optuna.trial import TrialState

        from rnnlab.search.study import SURPLUS, counts, dashboard_command

        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        study = self.open_study()
        n_trials, n_jobs = int(self.settings.n_trials), int(self.settings.n_jobs)
        max_failures = int(self.settings.max_failures)
        if str(self.settings.sampler._target_).endswith("GridSampler"):
            points = math.prod(len(values) for values in self.space.grid().values())
            if n_trials > points:
                log.info("search: the grid has %d points; n_trials=%d becomes %d", points, n_trials, points)
                n_trials = points
        pending = self.left_running(study) if self.config.get("resume") else []
        if pending:
            numbers = ", ".join(str(t.number) for t in pending)
            log.info("resume: left running, trial %s goes on with the same parameters", numbers)
        held = ", ".join(f"{count} {state}" for state, count in counts(study).items())
        log.info(
            "search: study '%s' in %s, %d trials; it holds %s", self.study_name, self.url, n_trials, held
        )
        log.info("search: the live view: %s", dashboard_command(self.url))
        job_idx = 0
        while True:
            failed = counts(study)["failed"]
            if failed >= max_failures:
                log.error(
                    "search stopped: %d trials failed (hydra.sweeper.max_failures=%d); their errors follow",
                    failed,
                    max_failures,
                )
                break
            batch = [(t.number, dict(t.params)) for t in pending[:n_jobs]]
            pending = pending[n_jobs:]
            repeats = []  # proposals of parameters a trial already has: its result, without training
            while len(batch) < n_jobs and len(study.get_trials(deepcopy=False)) < n_trials:
                trial = study.ask(self.space.distributions())
                if trial.number >= n_trials:  # another worker took the last places first
                    trial.set_user_attr(SURPLUS, True)
                    study.tell(trial.number, state=TrialState.FAIL)
                    break
                trial.set_user_attr("overrides", self.space.overrides(trial.params))
                trial.set_user_attr(SWEEP_DIR, str(self.sweep_dir.resolve()))  # whose trial it is
                if self.twin(study, trial.params, batch) is not None:
                    repeats.append((trial.number, dict(trial.params)))
                else:
                    batch.append((trial.number, dict(trial.params)))
            if not batch and not repeats:
                break
            if batch:
                self.run_batch(study, batch, job_idx)
                job_idx += len(batch)
            for number, params in repeats:
                self.tell_as_twin(study, number, self.twin(study, params, []))
        self.finish(study)

    @staticmethod
    def twin(study: Any, params: dict[str, Any], batch: list[tuple[int, dict[str, Any]]]) -> int | None:
        """An earlier trial (finished, or in this batch) with these parameters.

        A run is deterministic (seeded), so a proposal that repeats one is told the same result rather
        than trained again in the same folder."""
        from optuna.trial import TrialState

        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        for trial in study.get_trials(deepcopy=False, states=finished):
            if trial.params == params and not trial.user_attrs.get("surplus"):
                return trial.number
        return next((number for number, p in batch if p == params), None)

    def tell_as_twin(self, study: Any, number: int, twin: int) -> None:
        from optuna.trial import TrialState

        from rnnlab.search.study import trial_id

        before = study.get_trials(deepcopy=False)[twin]
        self.storage.set_trial_user_attr(trial_id(self.storage, self.study_name, number), "same_as", twin)
        if before.state == TrialState.COMPLETE:
            study.tell(number, before.value)
        else:
            error = before.user_attrs.get("error")
            if error:
                self.storage.set_trial_user_attr(
                    trial_id(self.storage, self.study_name, number), "error", error
                )
            study.tell(number, state=before.state)
        log.info("trial %d: the parameters of trial %d again; its result, without training", number, twin)

    def job_overrides(self, number: int, params: dict[str, Any]) -> list[str]:
        from rnnlab.overrides import hydra_quoted
        from rnnlab.search.study import ENV_STORAGE, ENV_STUDY, ENV_TRIAL

        env = {ENV_STORAGE: self.url, ENV_STUDY: self.study_name, ENV_TRIAL: str(number)}
        return [
            *self.space.overrides(params),
            *(f"++hydra.job.env_set.{key}={hydra_quoted(value)}" for key, value in env.items()),
        ]

    def run_batch(self, study: Any, batch: list[tuple[int, dict[str, Any]]], job_idx: int) -> None:
        from optuna.trial import TrialState

        from rnnlab.search.study import trial_id

        for number, params in batch:
            log.info("trial %d: %s", number, " ".join(self.space.overrides(params)[len(self.space.fixed) :]))
        returns = self.launcher.launch([self.job_overrides(n, p) for n, p in batch], initial_job_idx=job_idx)
        for (number, _), job in zip(batch, returns, strict=True):
            state, value, error = outcome(job)
            if state == "complete":
                study.tell(number, value)
                log.info("trial %d: %.6g", number, value)
            elif state == "pruned":
                study.tell(number, state=TrialState.PRUNED)
                log.info("trial %d: pruned", number)
            else:
                self.storage.set_trial_user_attr(
                    trial_id(self.storage, self.study_name, number), "error", error
                )
                study.tell(number, state=TrialState.FAIL)
                log.warning("trial %d failed: %s", number, error)

    def finish(self, study: Any) -> None:
        from rnnlab.search.study import draw_figures, write_results

        results = write_results(study, self.sweep_dir)
        draw_figures(study, self.sweep_dir)
        found = results["trials"]
        log.info(
            "search done: %d completed, %d pruned, %d failed",
            found["complete"],
            found["pruned"],
            found["failed"],
        )
        if results["best_params"] is not None:
            log.info("Best parameters: %s", results["best_params"])
            log.info("Best value: %s (trial %d)", results["best_value"], results["best_trial"])


def outcome(job: JobReturn) -> tuple[str, float | None, str | None]:
    """How a job ended: ("complete", value, None), ("pruned", None, None) or ("failed", None, error)."""
    from rnnlab.search.study import finite

    metrics: dict[str, Any] = {}
    run_dir = OmegaConf.select(job.hydra_cfg, "hydra.runtime.output_dir") if job.hydra_cfg else None
    if run_dir and (Path(run_dir) / "metrics.json").is_file():
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    if job.status == JobStatus.FAILED:
        try:
            job.return_value  # noqa: B018  (raises the exception the job raised)
        except Exception as error:
            return "failed", None, f"{type(error).__name__}: {error}"
    status = metrics.get("status")
    if status == "pruned":
        return "pruned", None, None
    if status not in (None, "completed"):
        return "failed", None, metrics.get("error") or f"status {status}"
    value = job.return_value
    if not finite(value):
        return "failed", None, metrics.get("error") or f"the job returned {value} (not a finite number)"
    return "complete", float(value), None
