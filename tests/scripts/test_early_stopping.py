"""Early stopping as a user asks for it: `callbacks=early_stopping` or `+callbacks.early_stopping.patience=N`,
the stop recorded in metrics.json, and a resumed run keeping the count of epochs without improvement."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from tests.project import call, run_dirs

pytestmark = pytest.mark.slow  # whole runs, through train.py's main in-process

QUICK = [
    "data=text",
    "data.batch_size=4",
    "data.num_steps=10",
    "model.hidden_size=16",
    "trainer.limit_train_batches=6",
]


def noise_corpus(path: Path) -> Path:
    """Random letters: nothing to learn, so the validation perplexity stops improving within a few epochs."""
    rng = random.Random(0)
    path.write_text("\n".join("".join(rng.choice("abcdefgh ") for _ in range(60)) for _ in range(40)))
    return path


def metrics_of(workdir: Path) -> tuple[Path, dict]:
    (run_dir,) = run_dirs(workdir / "outputs")
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize(
    "asked",
    [
        ["callbacks=early_stopping", "callbacks.early_stopping.patience=1"],
        ["+callbacks.early_stopping.patience=1"],  # from the default callbacks
    ],
)
def test_a_run_that_stops_improving_stops_and_says_when_and_why(workdir, asked, capfd):
    corpus = noise_corpus(workdir.parent / "noise.txt")
    result = call(
        "train.py",
        *QUICK,
        f"data.path={corpus}",
        "optimizer.lr=0.03",
        "trainer.max_epochs=12",
        *asked,
        "tags=[baseline,ablation]",
        cwd=workdir,
        capfd=capfd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir, metrics = metrics_of(workdir)
    stop = metrics["early_stopped"]
    assert metrics["status"] == "completed"
    assert 2 <= stop["epoch"] < 12 and metrics["epochs"] == stop["epoch"]
    assert stop["monitor"] == "val/ppl" and stop["patience"] == 1  # the task's metric, followed
    assert "did not improve in the last 1 records" in stop["reason"]
    assert f"stopped early after epoch {stop['epoch']}" in (run_dir / "train.log").read_text()
    hparams_recorded_what_the_run_is(run_dir, metrics)


def hparams_recorded_what_the_run_is(run_dir: Path, metrics: dict) -> None:
    """Tags, size and code versions, in metrics.json and in TensorBoard's HPARAMS session."""
    import lightning
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    assert metrics["tags"] == ["baseline", "ablation"] and metrics["parameters"] > 1000
    assert (
        metrics["torch_version"] == torch.__version__
        and metrics["lightning_version"] == lightning.__version__
    )
    assert metrics["rnnlab_version"] and "git_commit" in metrics and "git_dirty" in metrics
    events = EventAccumulator(str(run_dir)).Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["tags"].string_value == "baseline,ablation"
    assert hparams["parameters"].number_value == metrics["parameters"]
    assert hparams["torch_version"].string_value == torch.__version__
    assert hparams["git_commit"].string_value == (metrics["git_commit"] or "none")


def test_a_resumed_run_keeps_the_epochs_it_already_waited(workdir, capfd):
    # min_delta 100: no epoch after the first counts as an improvement, so with patience 3 an
    # uninterrupted run stops after epoch 4; one that forgot its count on resume would stop after 6.
    corpus = noise_corpus(workdir.parent / "noise.txt")
    settings = [
        "callbacks=early_stopping",
        "callbacks.early_stopping.patience=3",
        "callbacks.early_stopping.min_delta=100",
    ]
    first = call(
        "train.py", *QUICK, f"data.path={corpus}", *settings, "trainer.max_epochs=2", cwd=workdir, capfd=capfd
    )
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir, metrics = metrics_of(workdir)
    assert "early_stopped" not in metrics and metrics["epochs"] == 2
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    (state,) = [v for k, v in saved["callbacks"].items() if k.startswith("EarlyStopping")]
    assert state["wait_count"] == 1

    resumed = call("train.py", f"resume={run_dir}", "trainer.max_epochs=10", cwd=workdir, capfd=capfd)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["early_stopped"]["epoch"] == 4 and metrics["epochs"] == 4
    assert metrics["status"] == "completed" and len(metrics["resumes"]) == 1
