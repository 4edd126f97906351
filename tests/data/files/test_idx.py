import gzip
import struct
from pathlib import Path

import pytest
import torch

from rnnlab.data.files.idx import read_idx, write_idx
from rnnlab.errors import UserError

ARRAY = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4)


def idx_bytes(array: torch.Tensor) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.numpy().tobytes()


@pytest.mark.parametrize("array", [ARRAY, torch.tensor([7, 0, 255], dtype=torch.uint8), ARRAY[:0]])
def test_round_trip(tmp_path: Path, array: torch.Tensor):
    path = write_idx(tmp_path / "a.gz", array)
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # compressed
    assert gzip.decompress(path.read_bytes()) == idx_bytes(array)  # the IDX layout, written independently
    got = read_idx(path)
    assert got.dtype == torch.uint8 and got.shape == array.shape
    assert torch.equal(got, array)
    assert [p.name for p in tmp_path.iterdir()] == ["a.gz"]  # no temporary file left


def test_identical_arrays_give_identical_files(tmp_path: Path):
    assert write_idx(tmp_path / "a", ARRAY).read_bytes() == write_idx(tmp_path / "b", ARRAY).read_bytes()


def test_uncompressed_file_is_read(tmp_path: Path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(ARRAY))
    assert torch.equal(read_idx(path), ARRAY)


def test_write_refuses_other_dtypes(tmp_path: Path):
    with pytest.raises(UserError, match="uint8 tensors only, got torch.float32"):
        write_idx(tmp_path / "a.gz", ARRAY.float())


def write_gz(path: Path, content: bytes) -> Path:
    path.write_bytes(gzip.compress(content))
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (idx_bytes(ARRAY)[:-5], "is truncated: its header declares 2x3x4 = 24 values, found 19; delete it"),
        (idx_bytes(ARRAY) + b"\0", "is too long: its header declares 2x3x4 = 24 values, found 25; delete it"),
        (idx_bytes(ARRAY)[:9], "has a damaged IDX header (3 dimensions declared); delete it"),
        (
            b"\1\2" + idx_bytes(ARRAY)[2:],
            "is neither a gzip nor an IDX file (it starts with 01020803); delete it",
        ),
        (b"\0\0\x0d\1" + struct.pack(">I", 1) + b"\0\0\0\0", "holds IDX type 0x0d; only unsigned bytes"),
    ],
)
def test_damaged_content_is_refused_naming_the_file(tmp_path: Path, content: bytes, message: str):
    path = write_gz(tmp_path / "t10k-images-idx3-ubyte.gz", content)
    with pytest.raises(UserError) as error:
        read_idx(path)
    text = str(error.value)
    assert message in text and str(path) in text and "\n" not in text


def test_garbage_with_a_gz_name_is_refused(tmp_path: Path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"<html>404 Not Found</html>")  # what a misconfigured mirror might serve
    with pytest.raises(UserError, match="neither a gzip nor an IDX file .*delete it to download it again"):
        read_idx(path)


def test_truncated_gzip_is_refused(tmp_path: Path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(ARRAY))[:-10])  # an interrupted download
    with pytest.raises(UserError, match="corrupt or truncated gzip file .*delete it to download it again"):
        read_idx(path)


def test_corrupt_gzip_is_refused(tmp_path: Path):
    data = bytearray(gzip.compress(idx_bytes(ARRAY) * 20))
    data[20:30] = b"\xff" * 10  # damaged deflate stream
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="is a corrupt or truncated gzip file"):
        read_idx(path)
