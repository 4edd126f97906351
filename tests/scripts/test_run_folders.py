"""Runs started at the same instant each complete in a folder of their own."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.project import ROOT, TINY, launch, new_output_file, wait_all, write_repetitive_corpus

pytestmark = pytest.mark.slow  # four CLI runs

# scripts/train.py with the clock that names run folders fixed: all three runs start "in one second".
FROZEN = """
import datetime, runpy, sys
import rnnlab.command_line as folders
folders.now = lambda: datetime.datetime(2026, 1, 1, 12, 0, 0)
sys.argv[0] = sys.argv[1]
del sys.argv[1]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_three_runs_started_in_the_same_second_each_complete_in_their_own_folder(tmp_path):
    corpus = write_repetitive_corpus(tmp_path / "corpus.txt")
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": "/usr/bin:/bin", "RNNLAB_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    # the test's HOME and the session's matplotlib folder: without them matplotlib writes into the real ~
    env |= {name: os.environ[name] for name in ("HOME", "MPLCONFIGDIR")}
    args = [
        *TINY,
        f"data.path={corpus}",
        "data.max_tokens=2000",
        "debug=fdr",
        "callbacks.progress.style=lines",
    ]
    frozen = tmp_path / "frozen_clock.py"
    frozen.write_text(FROZEN)
    logs = [new_output_file(f"seed{seed}") for seed in range(1, 4)]
    runs = [
        launch(
            [sys.executable, str(frozen), str(ROOT / "scripts" / "train.py"), f"seed={seed}", *args],
            cwd=work,
            env=env,
            stdout=log,
            stderr=None,
        )
        for seed, log in zip(range(1, 4), logs, strict=True)
    ]
    wait_all(runs, timeout=600)
    outputs = [log.read_text() for log in logs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-3000:]
    said = sorted(
        line.split("run dir: ", 1)[1] for out in outputs for line in out.splitlines() if "run dir: " in line
    )
    day = work / "outputs" / "2026-01-01"
    assert said == [str(day / name) for name in ("12-00-00", "12-00-00-2", "12-00-00-3")]
    seeds = sorted(json.loads((Path(folder) / "metrics.json").read_text())["overrides"][0] for folder in said)
    assert seeds == ["seed=1", "seed=2", "seed=3"]  # each run wrote its own folder, and only that
    assert all((Path(folder) / "train.log").read_text().count("Seed set to") == 1 for folder in said)
    print("\n".join(line for out in outputs for line in out.splitlines() if "run dir: " in line))
