"""Lightning's lines reach the run's log handlers once, whichever was set up first: Lightning or logging."""

from __future__ import annotations

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
