"""`InterruptCheckpoint`: on Ctrl-C or SIGTERM, save where training stood and say how to resume."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class InterruptCheckpoint(Callback):
    """Saves `<dirpath>/<filename>.ckpt` when training is interrupted, and only then.

    Lightning's `OnExceptionCheckpoint` is close, but it saves on every exception (a non-finite loss
    would checkpoint broken weights next to the good ones), and its presence makes every `fit`
    without `ckpt_path` try to resume from "last". This keeps only the save-on-interrupt part.
    """

    def __init__(self, dirpath: str, filename: str = "interrupted") -> None:
        self.ckpt_path = str(Path(dirpath) / f"{filename}.ckpt")

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, KeyboardInterrupt | SIGTERMException):
            return
        trainer.save_checkpoint(self.ckpt_path, weights_only=False)
        if trainer.is_global_zero:
            path = Path(self.ckpt_path).resolve()
            # quoted twice: for the shell, and for Hydra (sweep folders have '=' and ',' in their names)
            override = f"'ckpt_path=\"{path}\"'"
            log.warning(
                "interrupted at epoch %d, step %d: saved %s. Resume with the same command plus %s",
                trainer.current_epoch + 1,
                trainer.global_step,
                path,
                override,
            )
