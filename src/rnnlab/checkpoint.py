"""Reading rnnlab checkpoints safely: plain data only, and networks only from rnnlab's own classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from torch import nn

from rnnlab.data.text.vocab import Vocab
from rnnlab.errors import UserError
from rnnlab.readback import checkpoint_problem

NETWORK_PACKAGE = "rnnlab.models."


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, loaded with `weights_only=True` so a file cannot run code."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"ckpt={path} is not a file; give the path of a .ckpt written by scripts/train.py")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load fails in many ways on a file that is not a checkpoint
        raise UserError(
            f"ckpt={path} is not a readable PyTorch checkpoint ({checkpoint_problem(path, error)})"
        ) from None
    if not isinstance(checkpoint, dict) or "rnnlab" not in checkpoint:
        raise UserError(f"ckpt={path} is not an rnnlab checkpoint; give a .ckpt written by scripts/train.py")
    return checkpoint


def load_language_model(path: str | Path) -> tuple[nn.Module, Vocab]:
    """Rebuild a trained language model and its vocabulary from a checkpoint alone."""
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
