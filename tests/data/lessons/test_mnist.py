import gzip
import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from rnnlab.contract import ClassInputs, InputKind
from rnnlab.data.files.idx import read_idx, write_idx
from rnnlab.data.lessons import mnist
from rnnlab.data.lessons.mnist import FILES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, MNISTData
from rnnlab.errors import UserError
from tests.project import write_mnist


@pytest.fixture
def files(tmp_path: Path) -> Path:
    return write_mnist(tmp_path / "mine", n_train=60, n_test=20, seed=3)


def loaded(**kwargs) -> MNISTData:
    data = MNISTData(**kwargs)
    data.prepare_data()
    data.setup()
    return data


def test_splits_shapes_and_normalisation(files: Path):
    data = loaded(path=str(files), val_size=15, batch_size=8, eval_batch_size=10)
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (data.splits[s] for s in ("train", "val", "test"))
    assert (
        train_x.shape == (45, 1, 28, 28)
        and val_x.shape == (15, 1, 28, 28)
        and test_x.shape == (20, 1, 28, 28)
    )
    assert train_x.dtype == torch.float32 and train_y.dtype == torch.long
    raw_images, raw_labels = read_idx(files / TRAIN_IMAGES), read_idx(files / TRAIN_LABELS)
    # The last val_size training images are the validation split, in order.
    assert torch.equal(val_y, raw_labels[45:].long()) and torch.equal(train_y, raw_labels[:45].long())
    # A known image: (pixel / 255 - 0.1307) / 0.3081, so black is -0.4242 and white 2.8215.
    expected = (raw_images[50].double() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(val_x[5, 0].double(), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(val_x[5].mean().item(), expected.mean().item(), rtol=0, atol=1e-5)
    torch.testing.assert_close(val_x[5].std().item(), expected.std().item(), rtol=0, atol=1e-5)
    assert data.network_sizes() == {"input_size": [1, 28, 28], "output_size": 10}
    assert data.task_inputs() == ClassInputs(tuple(str(d) for d in range(10)))
    assert data.input_kind is InputKind.IMAGES
    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (8, 1, 28, 28) and labels.shape == (8,)
    assert next(iter(data.val_dataloader()))[0].shape == (10, 1, 28, 28)


def test_black_and_white_pixels_map_to_the_lessons_values(tmp_path: Path):
    folder = write_mnist(tmp_path, n_train=4, n_test=2)
    write_idx(folder / TRAIN_IMAGES, torch.tensor([0, 255], dtype=torch.uint8).repeat(4, 28, 14))
    x = loaded(path=str(folder), val_size=1).splits["train"][0]
    assert x.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-6)
    assert x.max().item() == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-6)


def test_uncompressed_copies_are_accepted(files: Path):
    for name in FILES:
        (files / name.removesuffix(".gz")).write_bytes(gzip.decompress((files / name).read_bytes()))
        (files / name).unlink()
    assert len(loaded(path=str(files), val_size=10).splits["train"][0]) == 50


@pytest.mark.parametrize("val_size", [0, -1, 60, 61])
def test_val_size_must_leave_training_images(files: Path, val_size: int):
    with pytest.raises(UserError, match=f"data.val_size={val_size} must be"):
        loaded(path=str(files), val_size=val_size)


def test_missing_files_are_named(files: Path):
    (files / TRAIN_LABELS).unlink()
    (files / TEST_LABELS).unlink()
    with pytest.raises(UserError) as error:
        loaded(path=str(files))
    assert f"{files} lacks {TRAIN_LABELS}, {TEST_LABELS}; put the MNIST files there" in str(error.value)


def test_label_out_of_range_is_refused(files: Path):
    write_idx(files / TEST_LABELS, torch.full((20,), 10, dtype=torch.uint8))
    with pytest.raises(UserError, match=f"{TEST_LABELS} holds label 10; MNIST labels are digits 0 to 9"):
        loaded(path=str(files), val_size=10)


def test_image_and_label_counts_must_match(files: Path):
    write_idx(files / TRAIN_LABELS, torch.zeros(59, dtype=torch.uint8))
    with pytest.raises(UserError, match=f"holds 60 images but .*{TRAIN_LABELS} 59 labels"):
        loaded(path=str(files), val_size=10)


def test_images_must_be_three_dimensional(files: Path):
    write_idx(files / TRAIN_IMAGES, torch.zeros(60, 784, dtype=torch.uint8))
    with pytest.raises(UserError, match=r"shape \[60, 784\], not images \[N, H, W\]"):
        loaded(path=str(files), val_size=10)


# -- downloads ------------------------------------------------------------------------------------
@pytest.fixture
def served(http_server, monkeypatch) -> tuple[str, Path]:
    """The four synthetic files on a local server, with their MD5s as the expected ones."""
    url, folder = http_server
    write_mnist(folder / "mnist", n_train=30, n_test=10)
    md5s = {name: hashlib.md5((folder / "mnist" / name).read_bytes()).hexdigest() for name in FILES}
    monkeypatch.setattr(mnist, "FILES", md5s)
    return url, folder / "mnist"


def test_download_falls_back_to_the_next_mirror(served, tmp_path: Path):
    url, source = served
    data_dir = tmp_path / "cache"
    data = loaded(data_dir=str(data_dir), mirrors=[f"{url}/missing/", f"{url}/mnist"], val_size=5)
    assert sorted(p.name for p in (data_dir / "mnist").iterdir()) == sorted(FILES)
    for name in FILES:
        assert (data_dir / "mnist" / name).read_bytes() == (source / name).read_bytes()
    assert data.splits["train"][0].shape == (25, 1, 28, 28)
    # A second run finds the files, checks them and downloads nothing (the server is not asked).
    loaded(data_dir=str(data_dir), mirrors=[], val_size=5)


def test_wrong_md5_everywhere_leaves_no_file_and_says_what_to_do(served, tmp_path: Path, monkeypatch):
    url, _ = served
    bad = "0" * 32
    monkeypatch.setitem(mnist.FILES, TRAIN_LABELS, bad)
    data_dir = tmp_path / "cache"
    with pytest.raises(UserError) as error:
        loaded(data_dir=str(data_dir), mirrors=[f"{url}/missing/", f"{url}/mnist/"])
    text = str(error.value)
    assert text.startswith(f"could not download {TRAIN_LABELS} (could not download {url}/missing/")
    assert f"{url}/mnist/{TRAIN_LABELS} has MD5" in text and f"expected {bad}" in text
    assert f"in {data_dir / 'mnist'} by hand, or pass data.path=FOLDER" in text and "\n" not in text
    left = [p.name for p in (data_dir / "mnist").iterdir()]
    assert TRAIN_LABELS not in left and not [name for name in left if name.endswith(".part")]


def test_existing_file_with_a_wrong_md5_is_refused(served, tmp_path: Path):
    url, source = served
    cache = tmp_path / "cache" / "mnist"
    shutil.copytree(source, cache)
    write_idx(cache / TEST_LABELS, torch.zeros(10, dtype=torch.uint8))  # valid IDX, but not the release
    with pytest.raises(UserError, match=f"{cache / TEST_LABELS} does not have the expected MD5 .*delete it"):
        loaded(data_dir=str(tmp_path / "cache"), mirrors=[f"{url}/mnist/"])


def test_no_mirror_works(tmp_path: Path):
    with pytest.raises(UserError, match="data.mirrors is empty\\); put the four MNIST files"):
        loaded(data_dir=str(tmp_path), mirrors=[])


def test_own_copies_are_not_checksummed(served):
    _, source = served
    write_idx(source / TEST_LABELS, torch.zeros(10, dtype=torch.uint8))  # not the served file any more
    assert len(loaded(path=str(source), val_size=5).splits["test"][0]) == 10
