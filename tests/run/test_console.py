"""Lightning's lines reach the run's log handlers once, whichever was set up first: Lightning or logging."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Lightning imported before the root logger has a handler (as in a Python session, or a process that
# loaded it early), then the run's logging set up, as Hydra does for a run.
LIGHTNING_FIRST = """
import logging, sys
import lightning.pytorch as pl
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="run log: %(message)s")
from rnnlab.run.console import quiet_libraries
quiet_libraries()
pl.seed_everything(3)
"""
LOGGING_FIRST = """
import logging, sys
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="run log: %(message)s")
import lightning.pytorch as pl
from rnnlab.run.console import quiet_libraries
quiet_libraries()
pl.seed_everything(3)
"""


@pytest.mark.parametrize(
    "program", [LIGHTNING_FIRST, LOGGING_FIRST], ids=["lightning-first", "logging-first"]
)
def test_lightning_lines_go_to_the_run_log_once_whatever_the_import_order(program):
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("run log: Seed set to 3") == 1, done.stdout
    assert "Seed set to" not in done.stderr  # not printed a second time by Lightning's own handler


@pytest.mark.parametrize(("in_job", "hinted"), [(False, False), (True, True)])
def test_lightnings_srun_hint_is_shown_only_inside_a_slurm_job(tmp_path, monkeypatch, in_job, hinted):
    """Where an `srun` program exists, Lightning hints at it on every run; outside a SLURM job the run was
    not meant for SLURM, and the hint is noise."""
    import warnings

    import lightning as L

    from rnnlab.run.console import quiet_libraries
    from tests.project import QUIET_TRAINER
    from tests.test_slurm import fake_program

    fake_program(tmp_path, "srun")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    for variable in ("SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(variable, raising=False)
    if in_job:
        monkeypatch.setenv("SLURM_JOB_ID", "41")  # a batch script that runs python without srun
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_libraries()
        L.Trainer(**QUIET_TRAINER)
    shown = [str(w.message) for w in caught if "srun` command is available" in str(w.message)]
    assert bool(shown) is hinted, shown


def test_the_model_summary_does_not_warn_about_bf16_mixed_whose_weights_are_float32():
    """`experiment=shakespeare_char_cpu` trains under bf16-mixed; Lightning's summary would warn on every
    run that it sizes the model in 32 bits, which is what the float32 weights take."""
    import warnings

    import lightning as L
    from lightning.pytorch.utilities.model_summary import ModelSummary
    from torch import nn

    from rnnlab.run.console import quiet_libraries
    from tests.project import QUIET_TRAINER

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(4, 4)

    module = Tiny()
    module.trainer = L.Trainer(**{**QUIET_TRAINER, "precision": "bf16-mixed"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_libraries()
        size = ModelSummary(module).model_size
    assert size == pytest.approx(4 * 20 / 1e6)  # 20 float32 parameters, 4 bytes each
    assert not [w for w in caught if "model summary" in str(w.message)], [str(w.message) for w in caught]
