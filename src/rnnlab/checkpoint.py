"""rnnlab's checkpoints: choosing one (newest, readable) and reading it safely.

Every checkpoint rnnlab reads goes through here, with `torch.load(weights_only=True)` (plain data
only: a file cannot run code), and a network is rebuilt only from rnnlab's own classes. Choosing a
checkpoint reads each candidate once, and what it read (its epoch and step) travels with the choice.
Kept free of torch at import (resume= is checked before Hydra starts); torch loads when a file is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnlab.errors import UserError
from rnnlab.readback import Unreadable, checkpoint_problem

if TYPE_CHECKING:
    from torch import nn

    from rnnlab.data.text.vocab import Vocab

NETWORK_PACKAGE = "rnnlab.models."
PREFERRED = ("last.ckpt", "interrupted.ckpt")  # of two checkpoints saved at once, the one to resume


def load(path: Path, mmap: bool = False) -> Any:
    """`torch.load` as rnnlab reads every checkpoint: on the CPU, plain data only."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, loaded with `weights_only=True` so a file cannot run code."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"ckpt={path} is not a file; give the path of a .ckpt written by scripts/train.py")
    try:
        checkpoint = load(path)
    except Exception as error:  # torch.load fails in many ways on a file that is not a checkpoint
        raise UserError(
            f"ckpt={path} is not a readable PyTorch checkpoint ({checkpoint_problem(path, error)})"
        ) from None
    if not isinstance(checkpoint, dict) or "rnnlab" not in checkpoint:
        raise UserError(f"ckpt={path} is not an rnnlab checkpoint; give a .ckpt written by scripts/train.py")
    return checkpoint


def load_language_model(path: str | Path) -> tuple[nn.Module, Vocab]:
    """Rebuild a trained language model and its vocabulary from a checkpoint alone."""
    from hydra.utils import get_class

    from rnnlab.data.text.vocab import Vocab

    checkpoint = read_checkpoint(path)
    meta = checkpoint["rnnlab"]
    if meta.get("task") != "language_model":
        raise UserError(
            f"ckpt={path} is a checkpoint of the {meta.get('task')!r} task; "
            "text generation needs a language model"
        )
    if "network" not in meta:
        raise UserError(f"ckpt={path} does not say how to rebuild its network (written by an older rnnlab?)")
    vocab = Vocab.from_dict(meta["vocab"])
    kwargs = dict(meta["network"])
    target = kwargs.pop("_target_", "")
    # The class name comes from the file: only rnnlab's own networks may be built from it.
    if not target.startswith(NETWORK_PACKAGE):
        raise UserError(
            f"ckpt={path} names network {target!r}, which is not one of rnnlab's ({NETWORK_PACKAGE}*)"
        )
    try:
        network = get_class(target)(**kwargs)
    except (ImportError, AttributeError, TypeError) as error:  # a class renamed or re-sized since
        raise UserError(
            f"ckpt={path} describes a network this rnnlab cannot build ({error}); it was probably written "
            "by an older version: train it again"
        ) from None
    prefix = "network."
    weights = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    network.load_state_dict(weights)
    return network.eval(), vocab


def rnnlab_info(path: str | Path) -> dict[str, Any]:
    """What rnnlab recorded in a checkpoint (task, network, vocabulary), read without its weights."""
    info = load(Path(path), mmap=True).get("rnnlab", {})
    return info if isinstance(info, dict) else {}


# -- choosing the checkpoint to resume from ------------------------------------------------------
def checkpoints_newest_first(run_dir: Path) -> list[Path]:
    """Every checkpoint of the run (`last`, `interrupted`, `best-*`), the most recently saved first."""
    folder = run_dir / "checkpoints"
    found = [path for path in folder.glob("*.ckpt") if path.is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda path: (path.stat().st_mtime, path.name in PREFERRED), reverse=True)


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The run's most recently saved checkpoint, readable or not (None: it has none)."""
    found = checkpoints_newest_first(run_dir)
    return found[0] if found else None


@dataclass
class Position:
    """Where a checkpoint was saved: its epoch (from 0) and optimiser step."""

    epoch: int
    step: int


def checkpoint_position(path: Path) -> Position:
    """The epoch and optimiser step a checkpoint was saved at; `Unreadable` if it cannot be resumed from."""
    try:
        checkpoint = load(path, mmap=True)
    except Exception as error:  # torch.load fails in many ways on a file cut short or overwritten
        raise Unreadable(path, checkpoint_problem(path, error)) from None
    if not isinstance(checkpoint, dict) or not {"global_step", "state_dict"} <= checkpoint.keys():
        raise Unreadable(path, "not a Lightning checkpoint (no global_step or state_dict)")
    return Position(int(checkpoint.get("epoch", 0)), int(checkpoint["global_step"]))


@dataclass
class Choice:
    """The checkpoint to resume from (None: none is readable), where it was saved, and the newer ones lost."""

    checkpoint: Path | None = None
    position: Position | None = None
    lost: list[Unreadable] = field(default_factory=list)

    @property
    def step(self) -> int | None:
        return self.position.step if self.position else None


def readable_checkpoint(run_dir: Path) -> Choice:
    """The newest checkpoint of the run that can be read, and the newer ones that could not."""
    choice = Choice()
    for path in checkpoints_newest_first(run_dir):
        try:
            choice.position = checkpoint_position(path)
        except Unreadable as error:
            choice.lost.append(error)
            continue
        choice.checkpoint = path
        break
    return choice
