"""Train a model: `python scripts/train.py model=lstm data=timemachine [overrides...]`.

Composition runs before anything heavy is imported, so `--cfg job`, `--help` and config errors
answer at once; torch and lightning load only when a run starts.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import hydra
from omegaconf import DictConfig

import rnnlab.sweeps.naming  # noqa: F401  (registers the resolver that names sweep folders)

log = logging.getLogger("rnnlab")


def run(cfg: DictConfig) -> float:
    """One run (or one job of a sweep) from the config Hydra composed."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from rnnlab.errors import UserError
    from rnnlab.run.checks import in_multirun
    from rnnlab.run.train import train

    try:
        return train(cfg)
    except SIGTERMException:
        # Lightning stops on SIGTERM (and rnnlab on Ctrl-C) with an exception that would exit 0.
        from rnnlab.callbacks import interrupt

        interrupt.requeue_if_asked()  # a SLURM job told to stop (USR1, USR2): requeued, its checkpoint saved
        raise SystemExit(128 + (interrupt.received_signal or signal.SIGTERM)) from None
    except Exception as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if in_multirun():
            # One failed job must not stop the sweep: its metrics.json records the error, NaN tells
            # the sweeper the trial failed, and SweepReport fails the sweep's exit status at the end.
            log.error("error: %s", error, exc_info=not isinstance(error, UserError))
            return float("nan")
        if not isinstance(error, UserError):
            raise
        # A mistake the user can fix: one line, no traceback (HYDRA_FULL_ERROR=1 shows it).
        log.error("error: %s", error)
        raise SystemExit(2) from None


# Hydra looks for `config_path` beside the file of a task function whose module is `__main__`, and
# names the job (train.log) after that file; a module of any other name would be taken for a package.
# So it does also when this script is imported under another name (the tests call `main` in-process).
run.__module__ = "__main__"


def exit_status(code: object) -> int:
    """The status a process ends with for `SystemExit(code)` (None: 0; a message: printed, 1)."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """What `python scripts/train.py ARGS` does, with `argv` as ARGS (default: this process's own)."""
    from rnnlab.command_line import release_unused, rewrite_command
    from rnnlab.errors import UserError
    from rnnlab.search.search_space import check_override_syntax

    args = sys.argv[1:] if argv is None else list(argv)
    try:  # the run's own folder (`resume=`: its earlier one), which Hydra must know before it starts
        args = rewrite_command(args)  # resume= first: a run folder's path may hold '='
        check_override_syntax(args)
    except UserError as error:
        release_unused()  # the folder rewrite_command made for a run that will not start
        print(f"error: {error}", file=sys.stderr)
        return 2
    command = sys.argv
    sys.argv = [__file__ if argv is not None else command[0], *args]  # Hydra reads its command line there
    try:
        hydra.main(version_base="1.3", config_path="../conf", config_name="train")(run)()
    except SystemExit as stop:
        return exit_status(stop.code)
    finally:
        sys.argv = command
        release_unused()  # a config error stopped Hydra before it wrote anything: no empty folder left
    return 0


if __name__ == "__main__":
    sys.exit(main())
