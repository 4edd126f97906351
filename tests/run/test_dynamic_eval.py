"""`eval.py mode=dynamic` (rnnlab.run.dynamic_eval): each segment scored, then learned from.

A tiny character model is trained once on the pangram corpus, in-process; the tests score it
statically and dynamically through `evaluate`, as eval.py does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from rnnlab.errors import UserError
from rnnlab.run.dynamic_eval import RULES, DynamicSettings, WeightFollower
from rnnlab.run.evaluate import EvalConfig, evaluate
from rnnlab.run.train import train
from tests.project import TINY, call, compose_train, write_repetitive_corpus

# Every letter of the corpus, in an order it never shows: a pattern the model did not see in training.
UNSEEN_PATTERN = "zyxwvutsrqponmlkjihgfedcba "


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished tiny run on the pangram corpus, laid out as scripts/train.py leaves it."""
    work = tmp_path_factory.mktemp("dynamic")
    corpus = write_repetitive_corpus(work / "corpus.txt")
    run_dir = work / "run"
    settings = (f"data.path={corpus}", "data.max_tokens=6000", "trainer.max_epochs=2")
    cfg = compose_train(*TINY, *settings, output_dir=str(run_dir))
    train(cfg)
    (run_dir / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return run_dir


def eval_entries(run_dir: Path) -> dict:
    (eval_json,) = run_dir.glob("checkpoints/eval.json")
    return json.loads(eval_json.read_text())


def test_a_repeated_pattern_unseen_in_training_is_learned_as_it_is_scored(run_dir, tmp_path):
    text = tmp_path / "unseen.txt"
    text.write_text(UNSEEN_PATTERN * 30)
    shape = dict(run=str(run_dir), path=str(text), window=20, batch_size=1)
    static = evaluate(EvalConfig(**shape, mode="stream"))["test_loss"]
    # rms: the training gradients of a model that has learned its corpus are tiny, so its steps are large
    for rule, lr in (("sgd", 1.0), ("rms", 1e-4)):
        dynamic = evaluate(
            EvalConfig(**shape, mode="dynamic", lr=lr, decay=0.0, rule=rule, stats_tokens=2000)
        )
        assert dynamic["test_loss_dynamic"] < 0.7 * static, (rule, dynamic, static)
        assert "test_loss" not in dynamic  # a dynamic number never under a static name


def test_a_segment_is_scored_before_the_network_learns_from_it(run_dir, tmp_path):
    """One segment only: whatever the learning rate, its score is the static one (no peeking)."""
    text = tmp_path / "one-segment.txt"
    text.write_text(UNSEEN_PATTERN[:21])  # 20 predictions: one segment of 20
    shape = dict(run=str(run_dir), path=str(text), window=20, batch_size=1)
    static = evaluate(EvalConfig(**shape, mode="stream"))["test_loss"]
    dynamic = evaluate(EvalConfig(**shape, mode="dynamic", lr=1.0, decay=0.0, rule="sgd"))
    assert dynamic["test_loss_dynamic"] == pytest.approx(static, rel=1e-7, abs=0)


def test_with_learning_rate_0_it_is_the_static_stream_exactly(run_dir):
    shape = dict(run=str(run_dir), split="val", window=7, batch_size=2)
    static = evaluate(EvalConfig(**shape, mode="stream"))
    for rule in RULES:
        dynamic = evaluate(
            EvalConfig(**shape, mode="dynamic", lr=0.0, decay=0.5, rule=rule, stats_tokens=500)
        )
        for metric in ("loss", "ppl", "bpc"):
            assert dynamic[f"val_{metric}_dynamic"] == pytest.approx(static[f"val_{metric}"], rel=1e-7, abs=0)
        # recorded apart, with its settings, beside the static entry
        assert dynamic["eval_mode"] == "dynamic" and dynamic["eval_segment"] == 7
        assert dynamic["dynamic"]["lr"] == 0 and dynamic["dynamic"]["rule"] == rule
    entries = eval_entries(run_dir).values()
    assert any(e.get("eval_mode") == "stream" and "val_loss" in e for e in entries)
    assert not any(e.get("eval_mode") == "dynamic" and "val_loss" in e for e in entries)
    assert {e["dynamic"]["rule"] for e in entries if e.get("eval_mode") == "dynamic"} >= set(RULES)


def test_the_cli_prints_the_result_labelled_dynamic_with_its_settings(run_dir, capfd):
    settings = ["split=val", "mode=dynamic", "lr=0.05", "decay=0.01"]
    done = call("eval.py", f"run={run_dir}", *settings, cwd=run_dir.parent, capfd=capfd)
    assert done.returncode == 0, done.why()
    (line,) = [x for x in (done.stdout + done.stderr).splitlines() if "eval:" in x]
    assert "val loss_dynamic" in line and "dynamic, segments of 20" in line and "lr 0.05" in line
    assert "val loss " not in line


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(mode="dynamic", lr=-1.0), "lr=-1.0 must be 0"),
        (dict(mode="dynamic", rule="adam"), "rule='adam' is unknown"),
        (dict(mode="dynamic", decay=2.0), "decay=2.0 must be in"),
        (dict(mode="stream", lr=0.1), "lr= set dynamic evaluation; add mode=dynamic"),
        (dict(mode="dynamc"), "mode=dynamc is unknown"),
    ],
)
def test_a_bad_setting_is_refused_in_one_line(run_dir, settings, message):
    with pytest.raises(UserError, match=message) as refused:
        evaluate(EvalConfig(run=str(run_dir), **settings))
    assert "\n" not in str(refused.value)


# -- the update rules against the paper's equations, written out by hand --------------------------------
def two_weights() -> torch.nn.Module:
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0]]))
    return layer


def test_the_sgd_rule_steps_down_the_gradient_and_decays_toward_the_trained_weights():
    layer = two_weights()
    follower = WeightFollower(layer, DynamicSettings(lr=0.5, decay=0.1, rule="sgd", eps=1e-5, stats_tokens=1))
    layer.weight.grad = torch.tensor([[1.0, 1.0]])
    follower.update()  # at the trained weights: the decay has nothing to do
    assert layer.weight.tolist() == [[0.5, -2.5]]
    layer.weight.grad = torch.tensor([[0.0, 2.0]])
    follower.update()  # theta - lr g + decay (trained - theta)
    expected = [0.5 + 0.1 * (1.0 - 0.5), -2.5 - 0.5 * 2.0 + 0.1 * (-2.0 + 2.5)]
    assert layer.weight[0].tolist() == pytest.approx(expected)


def test_the_rms_rule_scales_each_weights_step_and_decay_by_its_training_gradient_rms():
    layer = two_weights()
    rms = [torch.tensor([[0.1, 0.3]])]  # mean 0.2: the decay shares are 0.5 and 1.5 times `decay`
    settings = DynamicSettings(lr=0.01, decay=0.8, rule="rms", eps=1e-3, stats_tokens=1)
    follower = WeightFollower(layer, settings, rms)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[2.0, 0.0]]))  # moved away from the trained (1, -2)
    layer.weight.grad = torch.tensor([[1.0, -1.0]])
    follower.update()
    share = [0.8 * 0.5, min(0.8 * 1.5, 1.0)]  # the second capped at 1: never past the trained value
    expected = [
        2.0 - 0.01 * 1.0 / (0.1 + 1e-3) + share[0] * (1.0 - 2.0),
        0.0 + 0.01 * 1.0 / (0.3 + 1e-3) + share[1] * (-2.0 - 0.0),
    ]
    assert layer.weight[0].tolist() == pytest.approx(expected, rel=1e-6)
