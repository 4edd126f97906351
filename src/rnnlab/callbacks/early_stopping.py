"""Early stopping on the task's headline metric, and what metrics.json says about a stop.

`callbacks=early_stopping` adds Lightning's `EarlyStopping` to the default callbacks;
`+callbacks.early_stopping.patience=N` does the same from any callbacks config (an entry named
`early_stopping` without a `_target_` is Lightning's `EarlyStopping`). With `monitor: null` it follows
the task's metric and direction, as the best checkpoint does.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import EarlyStopping
from omegaconf import DictConfig, OmegaConf

NAME = "early_stopping"
TARGET = "lightning.pytorch.callbacks.EarlyStopping"


def is_early_stopping(name: str, settings: DictConfig) -> bool:
    return name == NAME or str(settings.get("_target_", "")).endswith(".EarlyStopping")


def early_stopping_settings(settings: DictConfig, metric: str, mode: str) -> DictConfig:
    """The entry completed: Lightning's class when none is named, the task's `val/<metric>` and its mode
    when no monitor is given (a monitor without a mode: the task's mode for its own metric, else min)."""
    monitor = settings.get("monitor") or f"val/{metric}"
    own_mode = mode if monitor == f"val/{metric}" else "min"
    chosen_mode = settings.get("mode") or own_mode
    return OmegaConf.merge({"_target_": TARGET}, settings, {"monitor": monitor, "mode": chosen_mode})


def early_stop_record(callbacks: list[Any]) -> dict[str, Any]:
    """`{"early_stopped": {"epoch": N, "reason": ...}}` when an `EarlyStopping` ended the fit (epoch N
    counted from 1: the last epoch trained), else nothing."""
    for callback in callbacks:
        if isinstance(callback, EarlyStopping) and callback.stopping_reason_message:
            return {
                "early_stopped": {
                    "epoch": callback.stopped_epoch + 1,
                    "reason": callback.stopping_reason_message,
                    "monitor": callback.monitor,
                    "patience": callback.patience,
                }
            }
    return {}
