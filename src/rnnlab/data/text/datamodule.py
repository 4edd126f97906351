"""`LanguageModelData`: a text corpus as train / val / test token streams for a language model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from rnnlab.contract import InputKind, TextInputs
from rnnlab.data.files.download import DataFile, default_data_dir
from rnnlab.data.position import TrainingPosition
from rnnlab.data.splits import check_fractions, cut
from rnnlab.data.streams import (
    FreshWindows,
    RandomWindows,
    SequentialPartition,
    WindowGroups,
    shard_of,
    window_loader,
)
from rnnlab.data.text.cache import TokenCache, writable
from rnnlab.data.text.corpus import PREPROCESSING, TOKENS, check_source_path
from rnnlab.data.text.tokens import encode_file
from rnnlab.data.text.vocab import Vocab
from rnnlab.errors import UserError

log = logging.getLogger(__name__)

SAMPLING = ("sequential", "random")
# How validation and test score a split: one stream per row with the state carried (every token has
# all the text before it as context), or windows of eval_num_steps from a fresh state (nanoGPT's).
EVAL_MODES = ("stream", "windowed")
# Windows per training loader batch, each its own optimiser step: Lightning's cost per loader batch
# is then paid once per 8 steps (the parity measurements in the README). The one default.
WINDOWS_PER_BATCH = 8


def _positive(name: str, value: int | float | None) -> None:
    if value is not None and value <= 0:
        raise UserError(f"data.{name}={value} must be positive")


class LanguageModelData(TrainingPosition, L.LightningDataModule):
    """A corpus, tokenised once, split into contiguous train / val / test blocks.

    Where the text comes from, in order: `path`; else `filename` in `data_dir`; else the copy shipped
    with rnnlab; else a download of `url` into `data_dir`, verified against `sha1` before it is used.

    The ids are tokenised once into a `TokenCache` under `<data_dir>/cache/` (in `prepare_data`, so
    once per machine under DDP) and memory-mapped from there, so memory does not grow with the
    corpus; `cache=False`, or a data directory that cannot be written, keeps them in memory instead.
    `eval_max_tokens` / `test_max_tokens` score only the first tokens of the validation / test block.

    Training batches follow `sampling` (the book's sequential partitioning or random sampling).
    Validation and test always read their block as `eval_batch_size` parallel streams from the
    start, in windows of `eval_num_steps`, so every held-out token is scored once with the state
    of the text before it.
    """

    input_kind = InputKind.TOKENS
    hands_over = TextInputs

    def __init__(
        self,
        path: str | None = None,
        data_dir: str | None = None,  # None: $RNNLAB_DATA_DIR, else ~/.cache/rnnlab
        filename: str | None = None,
        url: str | None = None,
        sha1: str | None = None,
        preprocess: str = "d2l",
        tokens: str = "char",
        max_tokens: int | None = None,
        splits: tuple[float, float, float] = (0.9, 0.05, 0.05),
        batch_size: int = 32,
        num_steps: int = 35,
        sampling: str = "sequential",
        eval_batch_size: int | None = None,
        eval_num_steps: int = 256,
        eval_mode: str = "stream",
        eval_max_tokens: int | None = None,
        test_max_tokens: int | None = None,
        cache: bool = True,
        member: str | None = None,
        sha256: str | None = None,
        windows_per_batch: int | None = None,
        min_freq: int = 1,
        max_vocab: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name in (
            "batch_size",
            "num_steps",
            "max_tokens",
            "eval_batch_size",
            "eval_num_steps",
            "eval_max_tokens",
            "test_max_tokens",
            "windows_per_batch",
            "min_freq",
            "max_vocab",
        ):
            _positive(name, locals()[name])
        if tokens != "word" and (min_freq != 1 or max_vocab is not None):
            raise UserError(
                f"data.min_freq and data.max_vocab shorten a word vocabulary; with data.tokens={tokens} "
                "every token is kept (set data.tokens=word, or leave them at 1 and null)"
            )
        if max_vocab is not None and max_vocab < 3:
            raise UserError(f"data.max_vocab={max_vocab} must be at least 3 (<unk> and two words)")
        if preprocess not in PREPROCESSING:
            raise UserError(
                f"data.preprocess={preprocess!r} is unknown; choose one of {', '.join(PREPROCESSING)}"
            )
        if tokens not in TOKENS:
            raise UserError(f"data.tokens={tokens!r} is unknown; choose one of {', '.join(TOKENS)}")
        if eval_mode not in EVAL_MODES:
            raise UserError(f"data.eval_mode={eval_mode!r} is unknown; choose one of {', '.join(EVAL_MODES)}")
        if sampling not in SAMPLING:
            raise UserError(f"data.sampling={sampling!r} is unknown; choose one of {', '.join(SAMPLING)}")
        if path is None and filename is None:
            raise UserError("this dataset needs a file: pass data.path=FILE")
        self.file = DataFile(path, data_dir or default_data_dir(), filename, url, sha1, sha256=sha256)
        self.member = member  # the corpus inside a zip archive (text8, enwik8), read without unpacking
        self.preprocess, self.tokens, self.max_tokens, self.splits = (
            preprocess,
            tokens,
            max_tokens,
            check_fractions(splits, test_may_be_empty=True),
        )
        self.batch_size, self.num_steps, self.sampling, self.seed = batch_size, num_steps, sampling, seed
        self.windows_per_batch = windows_per_batch or WINDOWS_PER_BATCH
        self.min_freq, self.max_vocab = min_freq, max_vocab
        self.eval_batch_size, self.eval_num_steps = eval_batch_size or batch_size, eval_num_steps
        self.eval_mode = eval_mode
        self.max_scored = {"val": eval_max_tokens, "test": test_max_tokens}
        self.cache = cache
        self.vocab: Vocab | None = None
        self.split_tokens: dict[str, np.ndarray] = {}
        self.held_out: dict[str, int] = {}  # tokens in each held-out block, before any cap
        # The <unk> ids of a cached corpus, as its cache counted them when it was built: counting them
        # here would read the whole memory map into this process's memory.
        self.unknown_tokens: int | None = None

    def __getstate__(self) -> dict:
        """Pickled (for `ddp_spawn`) without the token arrays: pickling a memory map copies the whole
        corpus into every process; each process maps the cache again in `setup`."""
        state = self.__dict__.copy()
        state.update(vocab=None, split_tokens={}, held_out={})
        return state

    # -- where the text comes from -------------------------------------------------------------
    def prepare_data(self) -> None:
        self.file.prepare()
        cache = self._token_cache()
        if cache is not None:
            cache.ensure()

    def _token_cache(self) -> TokenCache | None:
        if not self.cache:
            return None
        root = Path(self.file.data_dir).expanduser() / "cache"
        if not writable(root):
            if not getattr(self, "_warned", False):
                log.warning("%s cannot be written: tokens stay in memory (data.cache=false says so)", root)
                self._warned = True
            return None
        return TokenCache(check_source_path(self.file.source()), root, self._encoding())

    def _encoding(self) -> dict[str, Any]:
        """The settings that decide the ids (`encode_file`'s arguments; a cache is kept per setting)."""
        return {
            "preprocess": self.preprocess,
            "tokens": self.tokens,
            "max_tokens": self.max_tokens,
            "member": self.member,
            "min_freq": self.min_freq,
            "max_vocab": self.max_vocab,
        }

    def _ids_and_vocab(self) -> tuple[np.ndarray, Vocab]:
        cache = self._token_cache()
        if cache is None:
            return encode_file(self.file.source(), **self._encoding())
        loaded = cache.ensure()  # after prepare_data: maps what it built
        self.unknown_tokens = cache.meta.get("unknown_tokens")
        return loaded

    # -- tokens ---------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        assert self.vocab is not None, "call setup() first"
        return len(self.vocab)

    def network_sizes(self) -> dict[str, int]:
        """One-hot (or embedded) tokens in, a score per vocabulary entry out."""
        return {"input_size": self.vocab_size, "output_size": self.vocab_size}

    def task_inputs(self) -> TextInputs:
        assert self.vocab is not None, "call setup() first"
        return TextInputs(
            num_steps=self.num_steps,
            carry_state=self.carries_state,
            windows_per_batch=self.windows_per_batch,
            eval_carries_state=self.eval_mode == "stream",
            vocab=self.vocab,
            token_kind=self.tokens,
        )

    def summary(self) -> dict[str, Any]:
        """For metrics.json: how validation and test scored (stream, or windows of n from a fresh
        state), and the held-out tokens scored, where a cap left some out."""
        mode = {"eval_mode": self.eval_mode}
        if self.eval_mode == "windowed":
            mode["eval_window"] = self.eval_num_steps
        return mode | {
            f"{split}_tokens_scored": len(self.split_tokens[split])
            for split in ("val", "test")
            if len(self.split_tokens[split]) < self.held_out[split]
        }

    def score_file(self, path: str, split: str) -> dict[str, int]:
        """Make another text file the `split` to evaluate (`scripts/eval.py path=`): read as the corpus
        was (`data.preprocess`, `data.tokens`), its symbols mapped into this vocabulary, the unknown
        ones to `<unk>`. Returns how many tokens will be scored and how many were unknown."""
        assert self.vocab is not None, "call setup() first"
        ids, own = encode_file(check_source_path(path), self.preprocess, self.tokens)
        if self.tokens == "byte":
            mapped, unknown = ids.astype(np.int64), 0
        else:
            mapping = np.array(self.vocab.encode(own.tokens), dtype=np.int64)
            is_unknown = np.array([token not in self.vocab.index for token in own.tokens])
            is_unknown[0] = True  # <unk> itself
            mapped, unknown = mapping[ids], int(is_unknown[ids].sum())
        if unknown == len(mapped):
            raise UserError(
                f"path={path}: none of its {self.tokens} symbols is in the checkpoint's vocabulary "
                f"({len(self.vocab)} entries, e.g. {' '.join(self.vocab.tokens[1:6])!r}); "
                "give a text of its kind"
            )
        self.split_tokens[split] = mapped
        self._eval_sampler(split)  # too short for the evaluation's batch shape: one line
        return {"tokens_scored": len(mapped) - 1, "unknown_tokens": unknown}

    @property
    def has_test_split(self) -> bool:
        """False when `data.splits` gives the test block 0 (tiny-shakespeare's nanoGPT split)."""
        return self.splits[2] > 0

    @property
    def carries_state(self) -> bool:
        """Whether consecutive training batches continue each other (so the state should carry)."""
        return self.sampling == "sequential"

    def setup(self, stage: str | None = None) -> None:
        if self.vocab is not None:  # rnnlab calls setup before Lightning does, to size the network
            return
        path = self.file.source()
        ids, vocab = self._ids_and_vocab()  # encode_file refused fewer than 2 distinct tokens
        self.split_tokens = self._split(ids)
        for split, cap in self.max_scored.items():
            self.held_out[split] = len(self.split_tokens[split])
            if cap is not None and cap < self.held_out[split]:
                self.split_tokens[split] = self.split_tokens[split][:cap]
                log.info(
                    "%s: scoring the first %d of its %d tokens (data.%s_max_tokens)",
                    split,
                    cap,
                    self.held_out[split],
                    "eval" if split == "val" else "test",
                )
        self.vocab = vocab
        # Build every sampler once now, so a corpus too small for the batch shape fails before training.
        self._train_sampler()
        self._eval_sampler("val")
        if self.has_test_split:
            self._eval_sampler("test")
        log.info(
            "%s: %d %s tokens, vocab %d%s, train/val/test %s",
            path.name,
            len(ids),
            self.tokens,
            len(vocab),
            self._unknown_share(ids),
            "/".join(str(len(t)) for t in self.split_tokens.values()),
        )

    def _split(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """The train / val / test blocks of the one corpus (`data.splits`)."""
        return cut(ids, self.splits)

    def _unknown_share(self, ids: np.ndarray) -> str:
        """How much of a shortened word vocabulary's text reads as <unk> (for the log line)."""
        if self.min_freq == 1 and self.max_vocab is None:
            return ""
        unknown = self.unknown_tokens if self.unknown_tokens is not None else int((ids == 0).sum())
        return f" ({unknown / len(ids):.1%} of the words read as <unk>)"

    # -- batches --------------------------------------------------------------------------------
    def _train_sampler(self) -> SequentialPartition | RandomWindows:
        n = len(self.split_tokens["train"])
        if self.sampling == "sequential":
            return SequentialPartition(
                n, self.batch_size, self.num_steps, self.seed, **shard_of(self.trainer)
            )
        return RandomWindows(n, self.batch_size, self.num_steps, self.seed, **shard_of(self.trainer))

    def _eval_sampler(self, split: str) -> SequentialPartition | FreshWindows:
        n = len(self.split_tokens[split])
        if self.eval_mode == "windowed":
            return FreshWindows(n, self.eval_batch_size, self.eval_num_steps, **shard_of(self.trainer))
        if n < self.eval_batch_size + 1:
            raise UserError(
                f"the {split} split has {n} tokens, too few for {self.eval_batch_size} evaluation streams; "
                "use more text (or a larger data.max_tokens) or lower data.eval_batch_size"
            )
        return SequentialPartition(
            n,
            self.eval_batch_size,
            self.eval_num_steps,
            random_offset=False,
            keep_tail=True,
            **shard_of(self.trainer),
        )

    def train_dataloader(self) -> DataLoader:
        sampler = self._train_sampler()
        groups = WindowGroups(sampler, self.windows_per_batch)
        return window_loader(self._tokens_for(sampler, "train"), self.resumable(groups))

    def val_dataloader(self) -> DataLoader:
        sampler = self._eval_sampler("val")
        return window_loader(self._tokens_for(sampler, "val"), sampler)

    def test_dataloader(self) -> DataLoader:
        sampler = self._eval_sampler("test")
        return window_loader(self._tokens_for(sampler, "test"), sampler)

    def _tokens_for(self, sampler: SequentialPartition | RandomWindows, split: str) -> Any:
        """The split's ids where the batches are gathered: on an accelerator, the device itself (as
        int32, once), so that a training step copies nothing from the host; on a CPU, as they are."""
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if device.type == "cpu":
            return self.split_tokens[split]
        sampler.device = device
        return torch.as_tensor(np.asarray(self.split_tokens[split]), dtype=torch.int32).to(device)
