"""What the console shows: the libraries' noise that says nothing about a run, filtered in one place."""

from __future__ import annotations

import logging
import os
import warnings

_TIP = "💡 Tip"

WARNINGS_TO_IGNORE = (
    # Batches are windows of an in-memory tensor, so loader workers would only add start-up cost.
    ".*does not have many workers.*",
    # Small sets have fewer batches per epoch than the logging interval; the steps are logged all the same.
    ".*smaller than the logging interval.*",
    # Raised from inside Lightning 2.6 on torch >= 2.10; nothing a user can act on.
    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",
    # Lightning looks for a resumable loader; rnnlab's datamodules restore the position instead.
    ".*your dataloader is not resumable.*",
    # Mid-epoch checkpoints every n steps hold the weights after the step, which is what resuming needs.
    ".*no pre-optimization state was saved.*",
    # Resuming into a run's own folder, where its checkpoints already are.
    ".*Checkpoint directory .* exists and is not empty.*",
    # matplotlib on numpy 2 about torch's __array__, when a confusion matrix is drawn.
    ".*__array__ implementation doesn't accept a copy keyword.*",
    # The model summary under bf16-mixed: the weights stay float32, so its "32 bits instead" is right.
    ".*Precision bf16-mixed is not supported by the model summary.*",
)


# Lightning's hint to start a run with srun, printed wherever an `srun` program exists: outside a SLURM
# job the run was not meant for SLURM (inside one, without srun, the hint may be just what is needed).
SRUN_HINT = ".*The `srun` command is available on your system but is not used.*"


def _not_an_advert(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_TIP)


def quiet_libraries() -> None:
    """Filter what Lightning, TensorBoard and matplotlib print on every run; safe to call again."""
    # `import lightning` gives the "lightning" logger a console handler of its own, on top of the root
    # handlers Hydra sets up (console and the run's log file): without this every line prints twice.
    logging.getLogger("lightning").handlers.clear()
    # Imported before any root handler existed (a Python session, a process that loaded Lightning early),
    # its subpackages keep a console handler of their own and stop their lines there: the run's log
    # file would miss "Seed set to ..." and the like. Whatever the import order, they go to the root.
    if logging.getLogger().hasHandlers():
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
    # ...and it advertises a cloud service on every run.
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _not_an_advert not in rank_zero.filters:
        rank_zero.addFilter(_not_an_advert)
    for message in WARNINGS_TO_IGNORE:
        warnings.filterwarnings("ignore", message)
    if not os.environ.get("SLURM_JOB_ID"):
        warnings.filterwarnings("ignore", SRUN_HINT)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="tensorboard.*")
