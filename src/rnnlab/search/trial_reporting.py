"""Inside a search's job: report the monitored validation metric to the job's Optuna trial after every
validation, and stop the run at the end of a validation its pruner condemns.

The search hands its job the storage URL, study name and trial number in environment variables
(`hydra.job.env_set`, which Hydra applies wherever the job runs), and every report goes through the
storage: pruning works the same under the basic launcher, joblib and submitit. A pruned run ends
normally (its checkpoints are kept); `trial_status` turns its metrics.json status into `pruned`.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from rnnlab.search.study import ENV_STORAGE, ENV_STUDY, ENV_TRIAL

log = logging.getLogger(__name__)


class ReportToTrial(L.Callback):
    """Reports `monitor` (by default the best-checkpoint metric) as the trial's intermediate value;
    the step is the validation's number, kept in checkpoints so a resumed trial goes on counting."""

    def __init__(self, storage: str, study_name: str, trial_number: int, run_dir: str) -> None:
        self.storage_url, self.study_name, self.trial_number = storage, study_name, trial_number
        self.run_dir = run_dir
        self.validations = 0
        self.pruned_at: int | None = None
        self._study: Any = None
        self._storage: Any = None
        self._trial_id: int | None = None

    def open(self) -> None:
        import optuna
        from hydra.utils import instantiate

        from rnnlab.search.study import open_storage, trial_id

        self._storage = storage = open_storage(self.storage_url)
        pruner_config = storage.get_study_user_attrs(storage.get_study_id_from_name(self.study_name)).get(
            "pruner"
        )
        pruner = instantiate(pruner_config) if pruner_config else optuna.pruners.NopPruner()
        self._study = optuna.load_study(study_name=self.study_name, storage=storage, pruner=pruner)
        self._trial_id = trial_id(storage, self.study_name, self.trial_number)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and self._study is None:
            self.open()
            self._storage.set_trial_user_attr(self._trial_id, "run_dir", self.run_dir)

    def monitor(self, trainer: L.Trainer, pl_module: Any) -> str:
        checkpoint = trainer.checkpoint_callback
        if isinstance(checkpoint, ModelCheckpoint) and checkpoint.monitor:
            return checkpoint.monitor
        return f"val/{pl_module.metric}"

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._study is None:
            return
        step = self.validations
        self.validations += 1
        value = trainer.callback_metrics.get(self.monitor(trainer, pl_module))
        if value is None or not math.isfinite(float(value)):
            return
        storage = self._storage
        storage.set_trial_intermediate_value(self._trial_id, step, float(value))
        if self._study.pruner.prune(self._study, storage.get_trial(self._trial_id)):
            self.pruned_at = step
            trainer.should_stop = True
            log.info("trial %d pruned at validation %d (%s)", self.trial_number, step, f"{float(value):.4g}")

    def state_dict(self) -> dict[str, Any]:
        return {"validations": self.validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.validations = int(state_dict.get("validations", 0))


def trial_callbacks(run_dir: str) -> list[L.Callback]:
    """The reporting callback when this run is a search's trial, else nothing."""
    if ENV_TRIAL not in os.environ:
        return []
    return [
        ReportToTrial(os.environ[ENV_STORAGE], os.environ[ENV_STUDY], int(os.environ[ENV_TRIAL]), run_dir)
    ]


def trial_status(trainer: L.Trainer) -> dict[str, Any]:
    """metrics.json entries of a pruned trial: its status and the validation it was pruned at."""
    for callback in trainer.callbacks:
        if isinstance(callback, ReportToTrial) and callback.pruned_at is not None:
            return {"status": "pruned", "pruned_at_validation": callback.pruned_at}
    return {}
