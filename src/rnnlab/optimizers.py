"""Adam and AdamW with their two betas as two settings (`optimizer.beta1`, `optimizer.beta2`), so that
a search can vary one of them: torch takes them as one pair, which a search dimension cannot name.
Every other argument is torch's, by the same name (a misspelt one is refused before the run)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from rnnlab.errors import UserError


def betas(beta1: float, beta2: float) -> tuple[float, float]:
    for name, value in (("beta1", beta1), ("beta2", beta2)):
        if not 0 <= value < 1:
            raise UserError(f"optimizer.{name}={value} must be in [0, 1)")
    return beta1, beta2


def adam(
    params: Iterable[Any],
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> torch.optim.Adam:
    """`torch.optim.Adam`, its `betas` given as `beta1` and `beta2`."""
    return torch.optim.Adam(
        params, lr, betas(beta1, beta2), eps, weight_decay, amsgrad, foreach=foreach, fused=fused
    )


def adamw(
    params: Iterable[Any],
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    amsgrad: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> torch.optim.AdamW:
    """`torch.optim.AdamW`, its `betas` given as `beta1` and `beta2`."""
    return torch.optim.AdamW(
        params, lr, betas(beta1, beta2), eps, weight_decay, amsgrad, foreach=foreach, fused=fused
    )
