from types import SimpleNamespace

import pytest

from rnnlab.errors import UserError
from rnnlab.run.checks import check_checkpoint_fits
from tests.test_checkpoint import CONFIG, save


def task(kind: str = "language_model", **network) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, network_config={**CONFIG, **network})


def test_a_checkpoint_of_this_task_and_network_is_taken(tmp_path):
    check_checkpoint_fits(str(save(tmp_path / "lm.ckpt")), task())


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
