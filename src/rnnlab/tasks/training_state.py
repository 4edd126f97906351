"""`TrainingStateMixin`: what an exact resume needs from a task besides what Lightning saves.

Lightning's checkpoint holds the weights, the optimiser and schedulers, and its loop counters; the
datamodule saves where the epoch stands (`rnnlab.data.position`). The task adds the random
generators and the epoch's metric accumulators (and `SequenceTask` its carried hidden state), tagged
with their epoch, under `checkpoint["rnnlab"]["training_state"]`, and puts them back when training
starts from such a checkpoint.
"""

from __future__ import annotations

from typing import Any

from rnnlab import random_state
from rnnlab.lightning_internals import attached_trainer, set_update_count


class TrainingStateMixin:
    """For a `Task`: save the training state in every checkpoint, restore it when training resumes."""

    resumed_from: dict[str, Any] | None = None  # a checkpoint's training state, until applied

    def training_state(self) -> dict[str, Any]:
        """The random generators and the epoch's training-metric accumulators, tagged with the epoch."""
        metrics = {
            name: {"state": dict(metric.metric_state), "updates": metric.update_count}
            for name, metric in self.stage_metrics("train").items()
        }
        return {"epoch": self.current_epoch, "random": random_state.capture(), "train_metrics": metrics}

    def save_training_state(self, info: dict[str, Any]) -> None:
        """Add the training state to a checkpoint's rnnlab section (nothing when no trainer runs)."""
        if attached_trainer(self) is not None:
            info["training_state"] = self.training_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.resumed_from = checkpoint.get("rnnlab", {}).get("training_state")

    def on_train_start(self) -> None:
        state, self.resumed_from = self.resumed_from, None
        if state is None:
            return
        random_state.restore(state["random"])
        # Lightning resumes a checkpoint from inside an epoch without calling `on_train_epoch_start`;
        # one from an epoch's end starts the next epoch afresh, and its state is not wanted.
        if state["epoch"] == self.current_epoch:
            self.resume_epoch(state)

    def resume_epoch(self, state: dict[str, Any]) -> None:
        """Continue the epoch that `state` (a `training_state()`) was saved in: its metric accumulators."""
        for name, metric in self.stage_metrics("train").items():
            saved = state["train_metrics"][name]
            for attr, value in saved["state"].items():
                setattr(metric, attr, value)
            set_update_count(metric, saved["updates"])
