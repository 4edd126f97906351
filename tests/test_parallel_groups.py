"""The suite's shared runs (a finished sweep, a trained pair of runs) are built once because every test
that uses one carries the same `xdist_group` and `pytest -n 3 --dist loadgroup` sends a group to one
worker. If a pytest or pytest-xdist release stops honouring the mark, nothing fails but time: this test
makes it fail."""

from __future__ import annotations

import subprocess
import sys

import pytest

GROUPED = """
import os, pytest

@pytest.mark.xdist_group("together")
@pytest.mark.parametrize("case", range(6))
def test_grouped(case):
    print("worker", os.environ["PYTEST_XDIST_WORKER"])
"""


def test_tests_of_one_xdist_group_run_on_one_worker(tmp_path):
    pytest.importorskip("xdist", reason="pytest-xdist is in the dev extra")
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-n",
        "3",
        "--dist",
        "loadgroup",
        "-v",
        "-p",
        "no:cacheprovider",
    ]
    done = subprocess.run(
        [*command, "--rootdir", str(tmp_path), str(tmp_path / "test_grouped.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    workers = {line.split("]")[0].lstrip("[") for line in done.stdout.splitlines() if "PASSED" in line}
    assert len(workers) == 1, f"the group ran on {sorted(workers)}; see pyproject.toml's pytest pin"
