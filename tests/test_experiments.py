"""Every experiment config composes and runs, and each tutorial's task learns what its lesson teaches.

Runs go through `rnnlab.run.train.train` (what scripts/train.py calls) on data the tests make.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rnnlab.run.train import train
from tests.project import CONF_DIR, compose_train, write_mnist, write_repetitive_corpus

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("[!_]*.yaml"))


def write_diabetes_like_csv(path: Path, rows: int = 300) -> Path:
    """Eight features in [-1, 1] and a label two of them decide (about two thirds of the rows are 1)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(rows, 8, generator=generator) * 2 - 1
    y = (x[:, 0] + x[:, 1] > -0.6).float()
    path.write_text(
        "".join(
            ",".join(f"{v:.4f}" for v in [*r, label]) + "\n" for r, label in zip(x.tolist(), y, strict=True)
        )
    )
    return path


@pytest.fixture(scope="module")
def test_data(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("data")
    return {
        "timemachine": str(write_repetitive_corpus(folder / "corpus.txt")),
        "diabetes": str(write_diabetes_like_csv(folder / "diabetes.csv")),
        "mnist": str(write_mnist(folder / "mnist", n_train=300, n_test=60)),
        "wordfiles": str(write_ptb_layout(folder / "ptb")),
    }


def write_ptb_layout(folder: Path) -> Path:
    """Three files named as the Penn Treebank's, with a few words a line (data=ptb reads a folder)."""
    folder.mkdir()
    for split, lines in (("train", 400), ("valid", 60), ("test", 60)):
        (folder / f"ptb.{split}.txt").write_text(" the quick brown fox jumps over the lazy dog \n" * lines)
    return folder


def data_path(cfg_data_target: str, test_data: dict[str, str]) -> list[str]:
    for name, path in test_data.items():
        if name in cfg_data_target.lower() or (name == "timemachine" and "LanguageModel" in cfg_data_target):
            return [f"data.path={path}"]
    return []


def run(tmp_path: Path, experiment: str, *overrides: str, test_data: dict[str, str]) -> dict:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    probe = compose_train(f"experiment={experiment}")
    extra = data_path(probe.data._target_, test_data)
    if experiment.startswith("mnist"):
        extra.append("data.val_size=50")
    cfg = compose_train(f"experiment={experiment}", *extra, *overrides, output_dir=str(run_dir))
    train(cfg)
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_a_fast_dev_run_step(tmp_path, experiment, test_data):
    metrics = run(tmp_path, experiment, "debug=fdr", test_data=test_data)
    assert metrics["status"] == "completed" and metrics["steps"] >= 1


@pytest.mark.parametrize("experiment", ["hello_rnncell", "hello_rnn", "hello_embedding"])
def test_the_hello_lessons_end_at_ohlol(tmp_path, experiment, test_data, caplog):
    with caplog.at_level(logging.INFO):
        metrics = run(tmp_path, experiment, test_data=test_data)
    assert "test prediction: ohlol (target ohlol)" in caplog.text
    assert metrics["test_acc"] == 1.0 and metrics["epochs"] == 15
    assert (
        metrics["test_acc_o"] == 1.0 and "test_acc_e" not in metrics
    )  # "e" is no target: no per-class entry


def test_the_linear_lesson_recovers_w_2_and_b_0(tmp_path, test_data):
    metrics = run(tmp_path, "linear_course", test_data=test_data)
    assert metrics["weight"] == pytest.approx(2, abs=0.05) and metrics["bias"] == pytest.approx(0, abs=0.05)
    assert metrics["test_mse"] < 0.01  # f(4) close to 8
    events = EventAccumulator(str(tmp_path / "run")).Reload()
    assert "val/fit" in events.Tags()["images"]
    assert events.Scalars("params/weight")[-1].value == pytest.approx(metrics["weight"], abs=0.01)


def test_the_logistic_lesson_puts_the_pass_mark_between_2_and_3_hours(tmp_path, test_data):
    metrics = run(tmp_path, "logistic_course", test_data=test_data)
    assert metrics["test_acc"] == 1.0 and 2 < -metrics["bias"] / metrics["weight"] < 3
    assert "val/probability" in EventAccumulator(str(tmp_path / "run")).Reload().Tags()["images"]


def test_the_sine_lesson_predicts_the_held_out_curve(tmp_path, test_data):
    metrics = run(tmp_path, "udacity_sine", test_data=test_data)
    # Predicting 0 everywhere scores mean(sin^2) = 0.5; a carried state that tracks the curve does far better.
    assert metrics["test_mse"] < 0.01 and metrics["steps"] == 75
    assert "val/prediction" in EventAccumulator(str(tmp_path / "run")).Reload().Tags()["images"]


def test_the_walkthrough_learns_when_a_signal_is_planted(tmp_path, test_data):
    metrics = run(
        tmp_path, "rnn_walkthrough", "data.signal=true", "data.num_samples=400", test_data=test_data
    )
    assert metrics["test_acc"] > 0.85


def test_the_diabetes_mlp_beats_the_majority_class(tmp_path, test_data):
    metrics = run(
        tmp_path,
        "diabetes_mlp",
        "optimizer=adam",
        "optimizer.lr=0.05",
        "trainer.max_epochs=40",
        test_data=test_data,
    )
    labels = torch.tensor(
        [float(line.rsplit(",", 1)[1]) for line in Path(test_data["diabetes"]).read_text().split()]
    )
    majority = max(labels.mean().item(), 1 - labels.mean().item())
    assert metrics["test_acc"] > majority + 0.1 and metrics["test_auroc"] > 0.9


def test_an_mnist_model_learns_synthetic_digits_and_draws_its_confusion_matrix(tmp_path, test_data):
    metrics = run(
        tmp_path,
        "mnist_cnn",
        "optimizer=adam",
        "~optimizer.momentum",
        "optimizer.lr=0.01",
        "trainer.max_epochs=4",
        test_data=test_data,
    )
    assert metrics["val_acc"] > 0.9 and metrics["test_acc"] > 0.9
    assert {"test_acc_0", "test_acc_9"} <= set(metrics)  # accuracy per class
    assert "val/confusion_matrix" in EventAccumulator(str(tmp_path / "run")).Reload().Tags()["images"]
