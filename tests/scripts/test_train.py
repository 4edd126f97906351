"""`scripts/train.py` and `scripts/generate.py`: their `main` called in-process in a fresh directory, as
the command runs (the run's output, files and refusals); one fresh `python scripts/train.py` as a user
starts it."""

from __future__ import annotations

import json
import math

import pytest

from tests.project import TINY, call, run, run_dirs

pytestmark = pytest.mark.slow  # whole runs: `pytest -m "not slow"` leaves them out


def test_fast_dev_run_writes_its_files_into_the_run_dir_and_nothing_else(workdir, repetitive_corpus):
    # the one train.py started as a user starts it: a fresh interpreter
    result = run("train.py", *TINY, f"data.path={repetitive_corpus}", "debug=fdr", cwd=workdir)
    assert result.returncode == 0, result.why()
    assert [p.name for p in workdir.iterdir()] == ["outputs"]  # no lightning_logs/ or stray files in the cwd
    (run_dir,) = run_dirs(workdir / "outputs")
    assert run_dir.relative_to(workdir / "outputs").parts[0].count("-") == 2  # outputs/<date>/<time>/
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "train.log").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["val_ppl"] > 1 and metrics["test_ppl"] > 1
    for split in ("val", "test"):  # bits per character next to perplexity
        assert metrics[f"{split}_bpc"] == pytest.approx(math.log2(metrics[f"{split}_ppl"]), rel=1e-5)
    assert "done: best val ppl" in (run_dir / "train.log").read_text()
    assert "\r" not in result.stdout  # not a terminal: log lines, not bar frames
    assert not list(workdir.rglob("lightning_logs"))


def test_a_user_mistake_is_one_line_and_leaves_no_claim_of_success(workdir, capfd):
    result = call("train.py", *TINY, f"data.path={workdir / 'missing.txt'}", cwd=workdir, capfd=capfd)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "error:" in line]
    assert len(errors) == 1 and "missing.txt does not exist" in errors[0]
    (run_dir,) = run_dirs(workdir / "outputs")
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "failed"


def test_generate_refuses_a_missing_checkpoint(workdir, capfd):
    result = call("generate.py", "ckpt=nowhere.ckpt", cwd=workdir, capfd=capfd)
    assert result.returncode == 2 and "ckpt=nowhere.ckpt is not a file" in result.stderr


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.hidden_size=16", "trainer.limit_train_batches=3"],  # the headline: The Time Machine
        ["experiment=diabetes_mlp"],
    ],
)
def test_the_headline_and_the_diabetes_lesson_run_with_no_data_and_no_network(
    workdir, overrides, isolated, capfd
):
    quick = ["trainer.max_epochs=1", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]
    result = call("train.py", *overrides, *quick, cwd=workdir, capfd=capfd)
    assert result.returncode == 0, result.why()
    assert "the copy shipped with rnnlab" in result.stderr + result.stdout
    assert not [
        p for p in isolated.data_dir.glob("*") if p.name != "cache"
    ]  # nothing downloaded (tokens cached)
    (run_dir,) = run_dirs(workdir / "outputs")
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
