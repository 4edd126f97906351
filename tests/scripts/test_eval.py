"""`scripts/eval.py`: a checkpoint scored without training, as metrics.json scored it, or another way."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from rnnlab.errors import UserError
from rnnlab.run.evaluate import EvalConfig, evaluate
from tests.project import call, run, write_repetitive_corpus

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("eval")]  # two small runs trained once, shared


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> dict[str, Path]:
    """One finished language-model run and one finished tutorial run (the diabetes lesson)."""
    work = tmp_path_factory.mktemp("eval-runs")
    corpus = write_repetitive_corpus(work / "corpus.txt")
    made = {}
    for name, args in {
        "lm": [
            "data=text",
            f"data.path={corpus}",
            "data.preprocess=raw",
            "data.batch_size=4",
            "data.max_tokens=6000",
            "data.num_steps=10",
            "model.hidden_size=16",
        ],
        "diabetes": ["experiment=diabetes_mlp"],
    }.items():
        done = call(
            "train.py", *args, "trainer.max_epochs=2", f"hydra.run.dir={work / name}", cwd=work, capfd=None
        )
        assert done.returncode == 0, done.why()
        made[name] = work / name
    return made


@pytest.fixture
def runs(trained_runs, tmp_path) -> dict[str, Path]:
    """A copy of the shared runs for each test: scoring a run writes its eval.json, and no test may see
    another's (nor depend on the order they ran in)."""
    return {
        name: shutil.copytree(run_dir, tmp_path / "runs" / name) for name, run_dir in trained_runs.items()
    }


def test_a_checkpoint_scores_what_its_metrics_json_says(runs):
    for name, metric in (("lm", "test_ppl"), ("diabetes", "test_acc")):
        recorded = json.loads((runs[name] / "metrics.json").read_text())
        entry = evaluate(EvalConfig(run=str(runs[name])))
        assert entry[metric] == pytest.approx(recorded[metric], rel=1e-6), name
        assert entry["checkpoint"] == str(runs[name] / "checkpoints" / Path(recorded["best_checkpoint"]).name)


def test_the_cli_prints_an_eval_line_and_keeps_each_setting_in_eval_json(runs, capfd):
    run_dir = runs["lm"]
    # the first as a user starts it (a fresh interpreter), the second through main in-process
    first = run("eval.py", f"run={run_dir}", "split=val", "mode=windowed", "window=16", cwd=run_dir.parent)
    second = call("eval.py", f"run={run_dir}", "batch_size=1", cwd=run_dir.parent, capfd=capfd)
    for done in (first, second):
        assert done.returncode == 0, done.why()
        assert "Traceback" not in done.stderr
    assert "eval: val loss" in first.stderr and "windowed, windows of 16" in first.stderr
    assert "eval: test loss" in second.stderr and "stream, 1 per batch" in second.stderr
    (eval_json,) = run_dir.glob("checkpoints/eval.json")
    entries = json.loads(eval_json.read_text())
    modes = {(e["split"], e["eval_mode"], e.get("eval_window"), e["batch_size"]) for e in entries.values()}
    assert modes == {("test", "stream", None, 1), ("val", "windowed", 16, 4)}
    assert len(entries) == len(modes)  # one entry per setting


def test_another_text_is_scored_with_the_checkpoints_vocabulary_and_unknown_symbols_counted(runs, tmp_path):
    text = tmp_path / "other.txt"
    text.write_text("the lazy dog jumps over the quick brown fox, twice: ZZ " * 5)
    entry = evaluate(EvalConfig(run=str(runs["lm"]), path=str(text), batch_size=1))
    assert entry["unknown_tokens"] > 0 and entry["tokens_scored"] == len(text.read_text()) - 1
    assert entry["test_ppl"] > 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda runs, tmp: EvalConfig(run=str(tmp)), "is not a run folder"),
        (lambda runs, tmp: EvalConfig(run=str(empty_run(runs["lm"], tmp))), "has no checkpoint"),
        (
            lambda runs, tmp: EvalConfig(
                run=str(runs["lm"]), ckpt=next(runs["diabetes"].glob("checkpoints/best-*"))
            ),
            "was written by a classification task",
        ),
        (
            lambda runs, tmp: EvalConfig(run=str(runs["lm"]), path=str(unknown_text(tmp))),
            "none of its char symbols",
        ),
        (lambda runs, tmp: EvalConfig(run=str(runs["diabetes"]), mode="windowed"), "are for language models"),
    ],
)
def test_bad_input_is_one_line(runs, tmp_path, make, message):
    with pytest.raises(UserError, match=message):
        evaluate(make(runs, tmp_path))


def empty_run(run_dir: Path, tmp: Path) -> Path:
    copy = tmp / "no-checkpoints"
    (copy / ".hydra").mkdir(parents=True)
    (copy / ".hydra" / "config.yaml").write_text((run_dir / ".hydra" / "config.yaml").read_text())
    return copy


def unknown_text(tmp: Path) -> Path:
    path = tmp / "unknown.txt"
    path.write_text("ZQX" * 40)  # the corpus is lower case: none of these is in its vocabulary
    return path


def test_help_lists_every_setting_with_its_default_and_meaning(capfd, workdir):
    done = call("eval.py", "--help", cwd=workdir, capfd=capfd)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("usage: python scripts/eval.py")
    for field in dataclasses.fields(EvalConfig):
        (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith(f"  {field.name}=")]
        assert field.metadata["help"].split()[0] in line


def test_a_mistyped_setting_is_one_line_naming_the_settings(capfd, workdir):
    done = call("eval.py", "splitt=val", cwd=workdir, capfd=capfd)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: Key 'splitt' not in 'EvalConfig'") and "split, mode" in line
