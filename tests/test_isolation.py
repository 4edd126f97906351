"""tests/conftest.py's isolation: a test that leaves a file in its temp HOME fails, unless it is marked
`writes_home`; a test that writes nothing there passes. Runs a small suite of its own in-process
(pytester) with the project's conftest as its plugin."""

from __future__ import annotations

SUITE = """
import os
from pathlib import Path

import pytest


def test_writes_nothing_into_home(tmp_path):
    (tmp_path / "fine.txt").write_text("its own temp dir")


def test_leaves_a_cache_in_home():
    cache = Path(os.environ["HOME"]) / ".cache" / "sometool"
    cache.mkdir(parents=True)
    (cache / "index").write_text("left behind")


@pytest.mark.writes_home
def test_writes_into_home_on_purpose():
    (Path(os.environ["HOME"]) / ".rnnlabrc").write_text("its point")
"""


def test_a_test_that_leaves_files_in_its_home_fails_unless_marked(pytester, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile(test_home=SUITE)
    result = pytester.runpytest_inprocess("-p", "tests.conftest", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)  # the teardown of the one that left a cache
    output = result.stdout.str()
    assert "ERROR at teardown of test_leaves_a_cache_in_home" in output
    assert "the test left files in its HOME" in output and ".cache/sometool/index" in output
