"""`WordFilesData`: a word-level corpus published as three files (train / valid / test), such as
WikiText-2 and the Penn Treebank as Mikolov prepared it.

Each file is read as it is published: words split on white space, and every line break an `<eos>`
token (`eos=true`, as PyTorch's `word_language_model` reads them and as the published token counts are
counted). The vocabulary is every word of the three files (the files were made so that none is
missing; PTB and WikiText-2 already write rare words as `<unk>`, which is rnnlab's id 0).

Where the files come from: `path` (a folder holding them), else `<data_dir>/<folder>/`, else a
download of each file verified by its SHA-256 before it is used. A file whose SHA-256 could not be
written down is not downloaded: the error says where to put it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.data.files.download import DataFile, default_data_dir
from rnnlab.data.text.corpus import check_text_file
from rnnlab.data.text.datamodule import LanguageModelData
from rnnlab.data.text.tokens import smallest_dtype
from rnnlab.data.text.vocab import Vocab
from rnnlab.errors import UserError

log = logging.getLogger(__name__)

EOS = "<eos>"
SPLITS = {"train": "train", "val": "valid", "test": "test"}  # rnnlab's split -> the file's role


def words_of(text: str, eos: bool) -> list[str]:
    """White-space separated words, line by line, each line ending in `<eos>` (when `eos`)."""
    if not eos:
        return text.split()
    return [word for line in text.splitlines() for word in (*line.split(), EOS)]


class WordFilesData(LanguageModelData):
    """Three published files as the train / val / test streams of word tokens."""

    def __init__(
        self,
        path: str | None = None,
        data_dir: str | None = None,  # None: $RNNLAB_DATA_DIR, else ~/.cache/rnnlab
        folder: str = "wikitext-2",
        files: dict[str, str] | None = None,
        base_url: str | None = None,
        sha256: dict[str, str | None] | None = None,
        eos: bool = True,
        **settings: Any,
    ) -> None:
        files = dict(files or {role: f"{role}.txt" for role in SPLITS.values()})
        if set(files) != set(SPLITS.values()):
            raise UserError(f"data.files must name the train, valid and test files (got {sorted(files)})")
        for one_file in ("filename", "url", "sha1", "member"):  # the one-file settings a config inherits
            settings.pop(one_file, None)
        settings.update(tokens="word", preprocess="raw", cache=False)
        data_dir = data_dir or default_data_dir()
        super().__init__(path=path, data_dir=data_dir, filename=f"{folder}/{files['train']}", **settings)
        sums = dict(sha256 or {})
        self.eos = eos
        self.split_files = {
            split: DataFile(
                path=None if path is None else str(Path(path).expanduser() / files[role]),
                data_dir=data_dir,
                filename=f"{folder}/{files[role]}",
                url=f"{base_url.rstrip('/')}/{files[role]}" if base_url and sums.get(role) else None,
                sha256=sums.get(role),
            )
            for split, role in SPLITS.items()
        }
        self.lengths: dict[str, int] = {}

    def prepare_data(self) -> None:
        for file in self.split_files.values():
            file.prepare()

    def _token_cache(self) -> None:
        return None  # a few million words: read in a second or two, kept in memory

    def _ids_and_vocab(self) -> tuple[np.ndarray, Vocab]:
        words = {}
        for split, file in self.split_files.items():
            words[split] = words_of(check_text_file(file.source()).decode("utf-8"), self.eos)
        if self.max_tokens is not None:  # a shorter training text (smoke runs); held-out text stays whole
            words["train"] = words["train"][: self.max_tokens]
        vocab = Vocab.build((w for split in words.values() for w in split), joiner=" ")
        dtype = smallest_dtype(len(vocab))
        index = vocab.index
        ids = {
            split: np.fromiter((index.get(w, 0) for w in split_words), dtype=np.int64).astype(dtype)
            for split, split_words in words.items()
        }
        self.lengths = {split: len(split_ids) for split, split_ids in ids.items()}
        return np.concatenate(list(ids.values())), vocab

    def _split(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """The three files' blocks, as they were read (`data.splits` does not apply)."""
        ends = np.cumsum(list(self.lengths.values()))
        return dict(zip(self.lengths, np.split(ids, ends[:-1]), strict=True))

    def summary(self) -> dict[str, int]:
        return {**super().summary(), "split_tokens": dict(self.lengths)}
