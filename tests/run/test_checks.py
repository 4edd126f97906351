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


@pytest.mark.parametrize(
    ("precision", "capabilities", "warned"),
    [
        ("bf16-mixed", {"avx2": True, "avx512_bf16": False, "amx_bf16": False}, True),
        ("bf16-mixed", {"avx2": True, "avx512_bf16": True}, False),
        ("bf16-mixed", {"bf16": True}, False),  # an Arm CPU with BF16
        ("32-true", {"avx2": True}, False),
    ],
)
def test_bf16_on_a_cpu_without_bf16_instructions_is_warned_of_once(
    monkeypatch, caplog, precision, capabilities, warned
):
    import lightning as L

    from rnnlab.run.checks import warn_if_bf16_is_emulated
    from tests.project import QUIET_TRAINER

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    trainer = L.Trainer(**{**QUIET_TRAINER, "precision": precision})
    with caplog.at_level("WARNING", logger="rnnlab.run.checks"):
        warn_if_bf16_is_emulated(trainer)
    lines = [r.getMessage() for r in caplog.records if r.name == "rnnlab.run.checks"]
    expected = [
        "trainer.precision=bf16-mixed on a CPU without bf16 instructions (AVX-512 BF16, AMX or Arm BF16) "
        "is likely slower than float32; set trainer.precision=32-true"
    ]
    assert lines == (expected if warned else [])
