"""tests.project.call: a script's main in-process sees this test's isolated folders, as its command would,
and leaves the process as it found it."""

from __future__ import annotations

import os
import signal

import torch
from hydra.core.hydra_config import HydraConfig

from tests.project import call


def test_a_call_sees_the_tests_folders_and_leaves_the_process_as_it_was(isolated, workdir, capfd):
    environ, cwd, handler = dict(os.environ), os.getcwd(), signal.getsignal(signal.SIGINT)
    done = call(
        "train.py", "--cfg", "job", "--resolve", "trainer.deterministic=true", cwd=workdir, capfd=capfd
    )
    assert done.returncode == 0, done.why()
    assert f"data_dir: {isolated.data_dir}" in done.stdout  # $RNNLAB_DATA_DIR of this test
    assert (dict(os.environ), os.getcwd(), signal.getsignal(signal.SIGINT)) == (environ, cwd, handler)
    assert not HydraConfig.initialized() and not torch.are_deterministic_algorithms_enabled()


def test_a_run_in_process_leaves_no_hydra_state_or_log_file_open(workdir, repetitive_corpus, capfd):
    import logging

    handlers = list(logging.getLogger().handlers)
    seed_before = os.environ.get("PL_GLOBAL_SEED")  # another in-process test of this worker may have set it
    done = call(
        "train.py",
        "data=text",
        f"data.path={repetitive_corpus}",
        "model.hidden_size=8",
        "debug=fdr",
        "trainer.deterministic=true",
        cwd=workdir,
        capfd=capfd,
    )
    assert done.returncode == 0, done.why()
    assert "run dir: " in done.stdout  # the run's log lines reach the captured output
    assert logging.getLogger().handlers == handlers
    assert not HydraConfig.initialized() and not torch.are_deterministic_algorithms_enabled()
    assert os.environ.get("PL_GLOBAL_SEED") == seed_before  # seed_everything's variable put back as it was
