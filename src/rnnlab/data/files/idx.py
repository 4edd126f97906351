"""The IDX format of MNIST, read and written here so that a damaged file fails with a plain message.

An IDX file is two zero bytes, a type code, the number of dimensions, one big-endian uint32 size per
dimension, then the values in row-major order. MNIST ships it gzip-compressed; both forms are read.
Only unsigned bytes (type 0x08), which is all MNIST holds, are supported.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import torch

from rnnlab.atomic import atomic_file
from rnnlab.data.files.download import AGAIN, read_content
from rnnlab.errors import UserError

UINT8 = 0x08


def read_idx(path: str | Path) -> torch.Tensor:
    """The array an IDX file (gzip-compressed or not) holds, as a uint8 tensor of its declared shape."""
    path = Path(path).expanduser()
    data = read_content(path)
    if len(data) < 4 or data[:2] != b"\0\0":
        raise UserError(
            f"{path} is neither a gzip nor an IDX file (it starts with {data[:4].hex()}); {AGAIN}"
        )
    type_code, ndim = data[2], data[3]
    if type_code != UINT8:
        raise UserError(
            f"{path} holds IDX type 0x{type_code:02x}; only unsigned bytes (0x08), as in MNIST, can be read"
        )
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise UserError(f"{path} has a damaged IDX header ({ndim} dimensions declared); {AGAIN}")
    sizes = list(struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim]))
    payload = memoryview(data)[4 + 4 * ndim :]
    expected = math.prod(sizes)
    if len(payload) != expected:
        shape = "x".join(map(str, sizes))
        problem = "truncated" if len(payload) < expected else "too long"
        raise UserError(
            f"{path} is {problem}: its header declares {shape} = {expected} values, "
            f"found {len(payload)}; {AGAIN}"
        )
    if expected == 0:  # torch.frombuffer refuses an empty buffer
        return torch.empty(sizes, dtype=torch.uint8)
    return torch.frombuffer(bytearray(payload), dtype=torch.uint8).reshape(sizes)


def write_idx(path: str | Path, array: torch.Tensor) -> Path:
    """Write a uint8 tensor as a gzip-compressed IDX file (byte-identical for identical input).

    The file appears by rename once complete, so a reader never sees half of it.
    """
    path = Path(path).expanduser()
    if array.dtype != torch.uint8:
        raise UserError(
            f"write_idx writes uint8 tensors only, got {array.dtype}; convert with .to(torch.uint8)"
        )
    if not 1 <= array.ndim <= 255:
        raise UserError(f"write_idx needs a tensor of 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, UINT8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with atomic_file(path) as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as file:
        file.write(header)
        file.write(array.detach().cpu().contiguous().numpy().tobytes())
    return path
