"""`AtomicCheckpointIO`: a checkpoint file is either the whole new one or the old one, never a part."""

from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from rnnlab.atomic import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves through `atomic_file` (a temporary file in the checkpoint's folder, synced, then renamed).

    Lightning's default writes through fsspec's temp file in the system temp dir and *moves* it into
    place, which is a plain copy (not atomic) when /tmp is another filesystem; a crash then could leave
    a truncated `last.ckpt`.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        with atomic_file(path) as file:
            torch.save(checkpoint, file)
