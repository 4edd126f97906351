from types import SimpleNamespace

import pytest
import torch

from rnnlab.errors import UserError
from rnnlab.run.checks import check_checkpoint_fits
from tests.project import checkpoint_network_config
from tests.project import save_language_model as save


def task(kind: str = "language_model", **network) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, network_config={**checkpoint_network_config(), **network})


def test_a_checkpoint_of_this_task_and_network_is_taken(tmp_path):
    path = save(tmp_path / "lm.ckpt")
    saved = torch.load(path, weights_only=True)["rnnlab"]
    this_run = task()
    assert (saved["task"], saved["network"]) == (
        this_run.kind,
        this_run.network_config,
    )  # same task and network
    assert check_checkpoint_fits(str(path), this_run) is None  # taken: no error


@pytest.mark.parametrize(
    ("this_run", "message"),
    [
        (
            task(kind="classification"),
            "was written by a language_model task, but this run trains a classification",
        ),
        (task(hidden_size=99), "holds another network (hidden_size=12 there, 99 here)"),
    ],
)
def test_a_checkpoint_of_another_task_or_network_is_refused_in_one_line(tmp_path, this_run, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_checkpoint_fits(str(save(tmp_path / "lm.ckpt")), this_run)
