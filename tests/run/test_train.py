"""`train(cfg)` refuses bad settings and bad corpus files with a `UserError` that names what was wrong,
before any training and before the run folder is written. tests/scripts/test_reliability.py runs a
few of these through the command line, as a user meets them (one line, exit status 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlab.errors import UserError
from rnnlab.run.train import train
from tests.project import TINY, compose_train, write_repetitive_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_repetitive_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


def refusal(run_dir: Path, *overrides: str) -> str:
    with pytest.raises(UserError) as refused:
        train(compose_train(*TINY, *overrides, output_dir=str(run_dir)))
    assert not run_dir.exists()  # nothing written: no folder, no metrics.json claiming anything
    message = str(refused.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.hidden_size=0", "model.hidden_size=0 must be positive"),
        ("data.batch_size=0", "data.batch_size=0 must be positive"),
        ("data.num_steps=-5", "data.num_steps=-5 must be positive"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 must be at least 1"),
        ("optimizer.lr=-1", "optimizer.lr=-1 must be positive"),
        ("task.tbptt_steps=0", "task.tbptt_steps=0 must be at least 1"),
        ("task.tbptt_steps=11", "task.tbptt_steps=11 is longer than a training sequence"),
        ("data.batch_size=4096", "too few for batch_size=4096"),
        ("data.sampling=shuffle", "data.sampling='shuffle' is unknown"),
        ("ckpt_path=nowhere.ckpt", "ckpt_path=nowhere.ckpt is not a file"),
    ],
)
def test_a_bad_setting_is_refused_before_training_naming_it(tmp_path, corpus, override, message):
    assert message in refusal(tmp_path / "run", f"data.path={corpus}", override)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("dir", "is a directory"),
        (b"", "is empty"),
        (b"\x00\x01binary", "looks binary"),
        ("caf\xe9 au lait".encode("latin-1") * 50, "is not UTF-8"),
        (b"aaaa\n" * 200, "has 1 distinct char token"),
    ],
)
def test_a_bad_corpus_file_is_refused_naming_what_is_wrong_with_it(tmp_path, content, message):
    corpus = tmp_path / "corpus.txt"
    if content == "dir":
        corpus.mkdir()
    else:
        corpus.write_bytes(content)
    assert message in refusal(tmp_path / "run", f"data.path={corpus}")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["scheduler=budget", "scheduler.decay=cos"], "scheduler.decay='cos' is unknown"),
        (["scheduler=budget", "scheduler.warmup_steps=-5"], "scheduler.warmup_steps=-5 must be"),
        (["optimizer.beta2=1.5"], "optimizer.beta2=1.5 must be in [0, 1)"),
        (["trainer.max_time=5min"], "trainer.max_time='5min' is not a duration"),
    ],
)
def test_bad_budget_settings_are_refused_before_training(tmp_path, corpus, overrides, message):
    assert message in refusal(tmp_path / "run", f"data.path={corpus}", *overrides)
