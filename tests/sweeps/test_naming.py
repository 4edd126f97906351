"""Sweep jobs are named by the overrides that vary, within the file-name limit."""

import pytest
import yaml

from rnnlab.sweeps.naming import MAX_NAME, job_name, varying_keys


def test_only_the_swept_keys_vary():
    task = ["model=rnn,gru", "data.max_tokens=60000", "optimizer.lr=range(1,3)", "experiment=glob(d2l_*)"]
    assert varying_keys(task, None) == {"model", "optimizer.lr", "experiment"}
    assert varying_keys(["trainer.max_epochs=4"], {"optimizer.lr": "interval(0.001, 0.1)"}) == {
        "optimizer.lr"
    }


@pytest.mark.parametrize("length", [50, 199, 200, 201, 600])
def test_a_name_is_kept_within_the_limit_and_stays_unique(length):
    name = "model.hidden_size=" + "9" * (length - len("model.hidden_size="))
    other = name[:-1] + "8"
    named, named_other = job_name(name, 3), job_name(other, 4)
    assert len(named.encode()) <= MAX_NAME and named != named_other
    assert (named == name) == (length <= MAX_NAME)  # short names are kept as they are


def test_a_name_never_makes_nested_folders_and_is_never_empty():
    assert job_name("data.data_dir=/a/b", 0) == "data.data_dir=_a_b"
    assert job_name("", 7) == "job7"


def test_a_path_that_varies_names_the_job_though_paths_are_left_out_by_default(tmp_path):
    from omegaconf import OmegaConf

    from rnnlab.sweeps.naming import SweepNaming

    config = OmegaConf.create(
        {
            "hydra": {
                "overrides": {
                    "task": ["data.path=a.txt,b.txt", "model=gru,lstm", "trainer.max_epochs=2"],
                    "hydra": [],
                },
                "sweeper": {},
                "sweep": {"dir": str(tmp_path / "sweep")},
                "job": {"config": {"override_dirname": {"exclude_keys": ["data.path", "ckpt_path"]}}},
            }
        }
    )
    SweepNaming().on_multirun_start(config)
    (added,) = config.hydra.overrides.hydra
    assert added == "hydra.job.config.override_dirname.exclude_keys=[ckpt_path,trainer.max_epochs]"
    # the sweep's command, which `resume=` must repeat
    command = yaml.safe_load((tmp_path / "sweep" / "sweep_command.yaml").read_text())
    assert command == {"overrides": ["data.path=a.txt,b.txt", "model=gru,lstm", "trainer.max_epochs=2"]}
