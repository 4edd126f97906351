"""`MNISTData`: the handwritten digits of the course's lessons 9-11, read from the four IDX files."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rnnlab.contract import ClassInputs, InputKind
from rnnlab.data.files.download import default_data_dir, fetch_verified, file_digest
from rnnlab.data.files.idx import read_idx
from rnnlab.data.lessons.in_memory import InMemoryData, Split
from rnnlab.errors import UserError

log = logging.getLogger(__name__)

# The four files and the MD5 of each (of the .gz file itself); looked up at call time so tests can swap it.
FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = FILES
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MEAN, STD = 0.1307, 0.3081  # of the MNIST training pixels scaled to [0, 1]
NUM_CLASSES = 10


class MNISTData(InMemoryData):
    """MNIST as normalised [N, 1, 28, 28] images and their digit labels.

    The files come from `path` when given (a folder of the user's own copies, taken as they are),
    else from `<data_dir>/mnist/`, where `prepare_data` downloads the missing ones from the first
    mirror that serves them with the right MD5. The last `val_size` training images are the
    validation split; the 10000 test images the test split.
    """

    input_kind = InputKind.IMAGES
    hands_over = ClassInputs

    def __init__(
        self,
        data_dir: str | None = None,  # None: $RNNLAB_DATA_DIR, else ~/.cache/rnnlab
        path: str | None = None,
        mirrors: Sequence[str] = MIRRORS,
        batch_size: int = 64,
        eval_batch_size: int = 1000,
        val_size: int = 5000,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, seed)
        if val_size < 1:
            raise UserError(f"data.val_size={val_size} must be at least 1 (the validation images)")
        self.data_dir, self.path = data_dir or default_data_dir(), path
        self.mirrors, self.val_size = list(mirrors), val_size

    def folder(self) -> Path:
        """Where the four files are read from."""
        if self.path is not None:
            return Path(self.path).expanduser()
        return Path(self.data_dir).expanduser() / "mnist"

    # -- download -------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Download the missing files into the data directory and check those already there."""
        if self.path is not None:
            return
        folder = self.folder()
        for name, md5 in FILES.items():
            dest = folder / name
            if not dest.exists():
                self._download(name, dest, md5)
            elif file_digest(dest, "md5") != md5:
                raise UserError(
                    f"{dest} does not have the expected MD5 {md5}; delete it to download it again, "
                    f"or pass data.path={folder} to use the files there as they are"
                )

    def _download(self, name: str, dest: Path, md5: str) -> None:
        """Try the mirrors in order; say what each one did wrong if none works."""
        failures = []
        for mirror in self.mirrors:
            url = f"{mirror.rstrip('/')}/{name}"
            log.info("downloading %s to %s", url, dest)
            try:
                fetch_verified(url, dest, md5, algorithm="md5")
                return
            except UserError as error:
                log.warning("%s", error)
                failures.append(str(error).split("; ")[0])  # the what, without fetch_verified's advice
        tried = " | ".join(failures) if failures else "data.mirrors is empty"
        raise UserError(
            f"could not download {name} ({tried}); put the four MNIST files ({', '.join(FILES)}) "
            f"in {dest.parent} by hand, or pass data.path=FOLDER holding them"
        )

    # -- splits ---------------------------------------------------------------------------------
    def _file(self, name: str) -> Path | None:
        """The file in the folder, gzipped or (as some copies keep it) decompressed."""
        folder = self.folder()
        for candidate in (folder / name, folder / name.removesuffix(".gz")):
            if candidate.is_file():
                return candidate
        return None

    def _read(self, images_name: str, labels_name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """One split's raw uint8 images [N, H, W] and labels [N], checked against each other."""
        images_file, labels_file = self._file(images_name), self._file(labels_name)
        assert images_file is not None and labels_file is not None, "load() checks the files exist"
        images, labels = read_idx(images_file), read_idx(labels_file)
        if images.ndim != 3:
            raise UserError(
                f"{images_file} holds an array of shape {list(images.shape)}, not images [N, H, W]"
            )
        if labels.ndim != 1:
            raise UserError(f"{labels_file} holds an array of shape {list(labels.shape)}, not labels [N]")
        if len(images) != len(labels):
            raise UserError(
                f"{images_file} holds {len(images)} images but {labels_file} {len(labels)} labels; "
                "use files of the same split and release"
            )
        if len(labels) and int(labels.max()) >= NUM_CLASSES:
            raise UserError(f"{labels_file} holds label {int(labels.max())}; MNIST labels are digits 0 to 9")
        return images, labels

    def load(self) -> dict[str, Split]:
        missing = [name for name in FILES if self._file(name) is None]
        if missing:
            how = (
                "put the MNIST files there or fix data.path"
                if self.path is not None
                else "run prepare_data() to download them, or put them there by hand"
            )
            raise UserError(f"{self.folder()} lacks {', '.join(missing)}; {how}")
        train_images, train_labels = self._read(TRAIN_IMAGES, TRAIN_LABELS)
        test_images, test_labels = self._read(TEST_IMAGES, TEST_LABELS)
        if train_images.shape[1:] != test_images.shape[1:]:
            raise UserError(
                f"the training images are {list(train_images.shape[1:])} but the test images "
                f"{list(test_images.shape[1:])} pixels; use the four files of one dataset"
            )
        n_train = len(train_images)
        if self.val_size >= n_train:
            raise UserError(
                f"data.val_size={self.val_size} must be less than the {n_train} training images "
                "(the last val_size of them are held out for validation)"
            )
        images, test_x = _normalise(train_images), _normalise(test_images)
        labels, test_y = train_labels.long(), test_labels.long()
        cut = n_train - self.val_size
        log.info("MNIST from %s: train/val/test %d/%d/%d", self.folder(), cut, self.val_size, len(test_x))
        return {
            "train": (images[:cut], labels[:cut]),
            "val": (images[cut:], labels[cut:]),
            "test": (test_x, test_y),
        }

    # -- what the network and the task are told -------------------------------------------------
    def network_sizes(self) -> dict[str, Any]:
        self.setup()
        return {"input_size": list(self.splits["train"][0].shape[1:]), "output_size": NUM_CLASSES}

    def task_inputs(self) -> ClassInputs:
        return ClassInputs(tuple(str(digit) for digit in range(NUM_CLASSES)))


def _normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W] -> float [N, 1, H, W], scaled to [0, 1] then standardised as the lessons do."""
    return images.float().div_(255).sub_(MEAN).div_(STD).unsqueeze(1)
