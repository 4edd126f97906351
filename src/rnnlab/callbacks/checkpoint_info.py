"""`NetworkInCheckpoint`: every checkpoint says how to rebuild its network without the data."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class NetworkInCheckpoint(Callback):
    """Writes the network's config (the model config with the sizes the data gave) into each checkpoint.

    `rnnlab.run.build` gives it the config; the task adds what it needs itself (its kind, a
    vocabulary, class names). Plain data only, so `torch.load(weights_only=True)` reads it.
    """

    def __init__(self, network_config: dict[str, Any]) -> None:
        self.network_config = network_config

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint.setdefault("rnnlab", {})["network"] = self.network_config
