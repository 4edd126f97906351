import json
import logging
import shlex
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rnnlab.sweeps.report import SweepReport


def job(sweep: Path, name: str, metrics: dict | None) -> None:
    (sweep / name / ".hydra").mkdir(parents=True)
    if metrics is not None:
        (sweep / name / "metrics.json").write_text(json.dumps(metrics))


def test_failed_and_unfinished_jobs_fail_the_sweep(tmp_path: Path, caplog):
    job(tmp_path, "model=gru", {"status": "completed"})
    job(
        tmp_path,
        "model=rnn",
        {"status": "failed", "error": "UserError: model.hidden_size=0 must be positive"},
    )
    job(tmp_path, "model=lstm", None)  # killed before it could write anything
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    with pytest.raises(SystemExit) as stop:
        SweepReport().on_multirun_end(config)
    assert stop.value.code == 1
    assert (
        "2 of 3 jobs failed" in caplog.text
        and "must be positive" in caplog.text
        and "model=lstm" in caplog.text
    )


def test_a_clean_sweep_passes(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO)
    job(tmp_path, "model=gru", {"status": "completed"})
    SweepReport().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert "all 1 jobs completed" in caplog.text


def test_a_job_with_a_damaged_metrics_file_is_listed_as_unreadable_and_fails_the_sweep(tmp_path, caplog):
    job(tmp_path, "model=gru", {"status": "completed"})
    job(tmp_path, "model=rnn", {"status": "completed"})
    (tmp_path / "model=rnn" / "metrics.json").write_text('{"status": "comp')  # cut short
    with pytest.raises(SystemExit) as stop:
        SweepReport().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert stop.value.code == 1
    assert "1 of 2 jobs failed (1 unreadable)" in caplog.text
    assert f"model=rnn: unreadable: {tmp_path / 'model=rnn' / 'metrics.json'}: JSONDecodeError" in caplog.text


def test_a_pruned_trial_passes_and_a_search_trial_without_a_finite_value_fails(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO)
    job(tmp_path, "lr=0.01", {"status": "completed", "monitor": "val/ppl", "val_ppl": 4.2})
    job(tmp_path, "lr=1e-07", {"status": "pruned", "monitor": "val/ppl", "val_ppl": 28.1})
    search = (
        {"dir": str(tmp_path)},
        {"_target_": "hydra_plugins.rnnlab_optuna_sweeper.sweeper.RnnlabOptunaSweeper"},
    )
    config = OmegaConf.create({"hydra": {"sweep": search[0], "sweeper": search[1]}})
    SweepReport().on_multirun_end(config)
    assert "all 2 jobs completed (1 pruned)" in caplog.text

    job(tmp_path, "lr=1e+30", {"status": "completed", "monitor": "val/ppl", "val_ppl": float("inf")})
    with pytest.raises(SystemExit) as stop:
        SweepReport().on_multirun_end(config)
    assert (
        stop.value.code == 1 and "1 of 3 jobs failed" in caplog.text and "its val/ppl was inf" in caplog.text
    )


def said(caplog) -> dict[str, str]:
    """The report's `what: command` lines after `sweep done`, by what they are."""
    messages = caplog.messages
    done = next(i for i, message in enumerate(messages) if message.startswith("sweep done"))
    return dict(message.split(": ", 1) for message in messages[done + 1 :] if not message.startswith("  "))


def test_a_finished_sweep_names_its_folder_and_the_commands_to_compare_and_look_at_it(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    sweep = tmp_path / "multirun" / "a b,c=d"  # a folder a shell would split, and Hydra's ',' and '='
    job(sweep, "model=gru", {"status": "completed"})
    SweepReport().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    steps = said(caplog)
    assert steps["sweep dir"] == str(sweep)
    assert shlex.split(steps["compare its runs"]) == ["python", "scripts/compare.py", str(sweep)]
    assert shlex.split(steps["look at it"]) == ["tensorboard", "--logdir", str(sweep)]
    assert "the study" not in steps  # not a search


def test_a_failed_sweep_still_names_its_folder(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    job(tmp_path, "model=rnn", {"status": "failed", "error": "boom"})
    with pytest.raises(SystemExit):
        SweepReport().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert said(caplog)["sweep dir"] == str(tmp_path)


@pytest.mark.parametrize(
    ("storage", "shown"),
    [
        (None, "sqlite:///{sweep}/study.db"),  # the default: the sweep folder's study.db
        ("postgresql://me:secret@db.example:5432/studies", "postgresql://me:***@db.example:5432/studies"),
    ],
)
def test_a_finished_search_also_gives_the_optuna_dashboard_command_for_its_storage(
    tmp_path, caplog, storage, shown
):
    caplog.set_level(logging.INFO)
    job(tmp_path, "lr=0.01", {"status": "completed", "monitor": "val/ppl", "val_ppl": 4.2})
    sweeper = {
        "_target_": "hydra_plugins.rnnlab_optuna_sweeper.sweeper.RnnlabOptunaSweeper",
        "storage": storage,
    }
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}, "sweeper": sweeper}})
    SweepReport().on_multirun_end(config)
    steps = said(caplog)
    assert shlex.split(steps["the study"]) == ["optuna-dashboard", shown.format(sweep=tmp_path)]
    assert "secret" not in caplog.text
