"""Synthetic MNIST for tests: the four IDX files, holding digit-like images a small model can learn.

Each class is its own stroke figure (ring, bars, diagonals, cross, blob), drawn at a random shift of
up to 2 pixels with random brightness and background noise, so the classes are distinct but no two
images are the same.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rnnlab.data.files.idx import write_idx
from rnnlab.data.lessons.mnist import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS

SIDE = 28
MAX_SHIFT = 2


def _templates() -> torch.Tensor:
    """[10, 28, 28] bool: one stroke figure per class."""
    y, x = torch.meshgrid(torch.arange(SIDE), torch.arange(SIDE), indexing="ij")
    radius = ((y - 13.5) ** 2 + (x - 13.5) ** 2).sqrt()
    inside = (y >= 5) & (y <= 22) & (x >= 5) & (x <= 22)

    def band(values: torch.Tensor, low: int) -> torch.Tensor:
        return (values >= low) & (values < low + 3)

    return torch.stack(
        [
            (radius >= 6) & (radius < 9),  # 0: ring
            band(x, 12) & inside,  # 1: vertical bar, centre
            band(y, 5) & inside,  # 2: horizontal bar, top
            band(y, 20) & inside,  # 3: horizontal bar, bottom
            band(x, 5) & inside,  # 4: vertical bar, left
            band(x, 20) & inside,  # 5: vertical bar, right
            ((y - x).abs() <= 1) & inside,  # 6: diagonal \
            ((y + x - 27).abs() <= 1) & inside,  # 7: diagonal /
            (band(x, 12) | band(y, 12)) & inside,  # 8: cross
            (y >= 10) & (y < 18) & (x >= 10) & (x < 18),  # 9: filled square
        ]
    )


def synthetic_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` uint8 images [n, 28, 28] and their labels [n] (uint8), classes balanced and shuffled."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 10)[torch.randperm(n, generator=generator)]
    strokes = _templates()[labels].float()
    shifts = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (n, 2), generator=generator)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        strokes[i] = strokes[i].roll((dy, dx), dims=(0, 1))
    brightness = torch.randint(160, 256, (n, 1, 1), generator=generator).float()
    noise = torch.randint(0, 50, (n, SIDE, SIDE), generator=generator).float()
    images = (strokes * brightness + noise).clamp(0, 255)
    return images.to(torch.uint8), labels.to(torch.uint8)


def write_mnist(folder: Path, n_train: int = 300, n_test: int = 50, seed: int = 0) -> Path:
    """Write the four MNIST files (canonical names, gzip IDX) into `folder`; returns `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = synthetic_digits(n_train, seed)
    test_images, test_labels = synthetic_digits(n_test, seed + 1)
    write_idx(folder / TRAIN_IMAGES, train_images)
    write_idx(folder / TRAIN_LABELS, train_labels)
    write_idx(folder / TEST_IMAGES, test_images)
    write_idx(folder / TEST_LABELS, test_labels)
    return folder
