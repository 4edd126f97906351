"""The checks `hparams_search=...` runs before a search writes anything, called as the SearchCheck
callback calls them, on a composed config (tests/scripts/test_search.py runs one case as a user
does, through the command line)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from rnnlab.errors import UserError
from tests.project import CONF_DIR

pytest.importorskip("optuna", reason='the sweep extra is not installed: pip install -e ".[sweep]"')


def search_config(tmp_path: Path, choices: list[str], sweep_overrides: list[str]):
    """lm_optuna's config as its sweep sees it: `sweep_overrides` (choice(...) and the like, which
    compose refuses outside a multirun) added to the command line Hydra records."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hparams_search=lm_optuna", *choices, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.hydra.overrides.task = [*cfg.hydra.overrides.task, *sweep_overrides]
    return cfg


@pytest.mark.parametrize(
    ("choices", "sweep_overrides", "message"),
    [
        ([], ["modle.lr=choice(1,2)"], "modle.lr is searched but is not a key of the config"),
        ([], ["optimizer.lr=interval(5)"], "optimizer.lr=interval(5): TypeError"),
        ([], ["optimizer.lr=choice()"], "empty choice is not legal"),
        ([], ["optimizer.lr=tag(log,interval(0,1))"], "a log-scaled interval needs bounds above 0"),
        (["hydra.sweeper.storage=sqlite:////no/such/dir/x.db"], [], "cannot be opened"),
        (["hydra.sweeper.storage=journal:///no/such/dir/x.log"], [], "/no/such/dir does not exist"),
        (["hydra.sweeper.storage=journal:///no/such/dir/y.log", "resume=/x"], [], "its journal file"),
        (["hydra/sweeper/sampler=grid"], [], "the grid sampler needs choice(...) or range(...)"),
        (["hydra/sweeper/pruner=threshold"], [], "Either lower or upper must be specified"),
        (["hydra.sweeper.n_trials=0"], [], "hydra.sweeper.n_trials=0 must be at least 1"),
    ],
)
def test_bad_search_settings_are_refused_with_a_message_that_names_them(
    tmp_path, choices, sweep_overrides, message
):
    from rnnlab.search.search_check import search_settings

    cfg = search_config(tmp_path, choices, sweep_overrides)
    with pytest.raises(UserError) as refused:
        search_settings(cfg)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "sweep").exists()


def test_good_search_settings_give_the_space_and_the_sweep_folder_s_database(tmp_path):
    from rnnlab.search.search_check import search_settings

    space, url = search_settings(search_config(tmp_path, [], ["optimizer.lr=choice(0.01,0.02)"]))
    assert "optimizer.lr" in space.dimensions and "model.dropout" in space.dimensions
    assert url == f"sqlite:///{tmp_path / 'sweep' / 'study.db'}"


def test_a_relative_journal_file_is_made_absolute_for_the_jobs_and_workers(tmp_path, monkeypatch):
    from rnnlab.search.search_check import search_settings

    monkeypatch.chdir(tmp_path)
    cfg = search_config(tmp_path, ["hydra.sweeper.storage=journal://study.log"], ["optimizer.lr=choice(1,2)"])
    _, url = search_settings(cfg)
    assert url == f"journal://{tmp_path / 'study.log'}" and (tmp_path / "study.log").is_file()
