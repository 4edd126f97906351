"""`scripts/tutorials.py`: runs tutorial experiments and reads their results back into a table."""

import json

import pytest

from tests.project import run

pytestmark = pytest.mark.slow  # CLI subprocesses: `pytest -m "not slow"` leaves them out


def test_the_table_is_read_back_from_the_runs(workdir):
    result = run("tutorials.py", "hello_rnn", "linear_course", "--out", str(workdir / "t"), cwd=workdir)
    assert result.returncode == 0, result.why()
    table = (workdir / "t" / "tutorials.md").read_text()
    hello, linear = (line for line in table.splitlines() if line.startswith("| `"))
    assert '"ohlol" at the end' in hello and "test acc 1" in hello
    assert "w = 1.99" in linear or "w = 2.00" in linear
    assert (workdir / "t" / "hello_rnn" / "metrics.json").exists()
    metrics = json.loads((workdir / "t" / "hello_rnn" / "metrics.json").read_text())
    assert metrics["prediction"] == metrics["prediction_target"] == "ohlol"  # data, not a log line
    assert 1 <= metrics["prediction_first_right_epoch"] <= metrics["epochs"]
