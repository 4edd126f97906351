"""From a text file to token ids and a vocabulary, vectorised, with the book's rules and ids.

The rules are those of `corpus.preprocess` and `corpus.tokenize` (the d2l book's), and so are the
ids: `<unk>` = 0, then the most frequent token first, ties in order of first appearance. What
differs is the speed: characters are handled as numpy arrays of bytes or code points and words by
one regular expression over the whole text, never a Python loop per character.

`data.tokens=byte` reads the file's bytes as they are: 256 ids, no decoding, no preprocessing.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch

from rnnlab.data.text.corpus import PREPROCESSING, TOKENS, check_text_file
from rnnlab.data.text.vocab import UNKNOWN, ByteVocab, Vocab
from rnnlab.errors import UserError


def smallest_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    """The smallest unsigned integer type that holds every id."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return dtype
    raise UserError(f"a vocabulary of {vocab_size:,} tokens is too large")


def encode_file(
    path: str | Path,
    preprocess: str = "d2l",
    tokens: str = "char",
    max_tokens: int | None = None,
    member: str | None = None,
    min_freq: int = 1,
    max_vocab: int | None = None,
) -> tuple[np.ndarray, Vocab]:
    """The file's (or its zip `member`'s) token ids (`smallest_dtype`) and its vocabulary.

    Words may leave rare ones out of the vocabulary (`min_freq`, `max_vocab`): they read as `<unk>`.
    """
    if preprocess not in PREPROCESSING:
        choices = ", ".join(PREPROCESSING)
        raise UserError(f"data.preprocess={preprocess!r} is unknown; choose one of {choices}")
    if tokens not in TOKENS:
        raise UserError(f"data.tokens={tokens!r} is unknown; choose one of {', '.join(TOKENS)}")
    if tokens == "byte":
        if preprocess != "raw":
            raise UserError("data.tokens=byte reads the file's bytes as they are; use data.preprocess=raw")
        raw = check_text_file(path, decode=False, member=member)
        return np.frombuffer(raw, dtype=np.uint8)[:max_tokens], ByteVocab()
    raw = check_text_file(path, member=member)
    if tokens == "word":
        ids, vocab = _words(raw, preprocess, max_tokens, min_freq, max_vocab)
    elif preprocess == "d2l" or raw.isascii():
        ids, vocab = _byte_chars(_d2l_chars(raw) if preprocess == "d2l" else raw, max_tokens)
    else:
        ids, vocab = _code_point_chars(raw, max_tokens)
    if len(vocab) < 3:  # refused here, before anything is cached
        raise UserError(
            f"{path} has {len(vocab) - 1} distinct {tokens} token(s) after data.preprocess={preprocess}; "
            "a language model needs at least 2 (try data.preprocess=raw, or another file)"
        )
    return ids, vocab


def _byte_chars(text: bytes, max_tokens: int | None) -> tuple[np.ndarray, Vocab]:
    """One byte a character (d2l or ASCII text): ids by a 256-entry translation table, at memory speed."""
    text = text if max_tokens is None else text[:max_tokens]
    order = frequency_order(np.frombuffer(text, dtype=np.uint8)).tolist()
    table = bytearray(256)
    for index, symbol in enumerate(order, start=1):
        table[symbol] = index
    vocab = Vocab([UNKNOWN, *(chr(symbol) for symbol in order)])
    return np.frombuffer(text.translate(bytes(table)), dtype=np.uint8), vocab


def _code_point_chars(raw: bytes, max_tokens: int | None) -> tuple[np.ndarray, Vocab]:
    """Characters of any script, as code points."""
    symbols = np.frombuffer(raw.decode("utf-8").encode("utf-32-le"), dtype=np.uint32)[:max_tokens]
    order = frequency_order(symbols)
    vocab = Vocab([UNKNOWN, *(chr(int(symbol)) for symbol in order)])
    table = np.zeros(int(symbols.max()) + 1, dtype=smallest_dtype(len(vocab)))
    table[order] = np.arange(1, len(order) + 1)
    ids = np.empty(len(symbols), dtype=table.dtype)
    for start in range(0, len(symbols), 1 << 24):  # in slices: numpy makes an int64 copy of each index
        ids[start : start + (1 << 24)] = table[symbols[start : start + (1 << 24)]]
    return ids, vocab


def _d2l_table() -> bytes:
    """Bytes -> the d2l alphabet: letters lower-cased, line breaks to newline, anything else to space."""
    table = bytearray(b" " * 256)
    for letter in range(ord("a"), ord("z") + 1):
        table[letter] = table[letter - 32] = letter
    for byte in (0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E):  # where str.splitlines() ends a line
        table[byte] = ord("\n")
    return bytes(table)


_D2L_TABLE = _d2l_table()


def _d2l_chars(raw: bytes) -> bytes:
    """The d2l rule on bytes: letters lower-cased; a run of non-letters becomes one space, or nothing
    where it holds a line break or starts or ends the text (each line is stripped, lines are joined)."""
    for separator in ("\x85", "\u2028", "\u2029"):  # the line breaks that are not one byte in UTF-8
        raw = raw.replace(separator.encode(), b"\n")
    # Pieces that end at a line break give the same result as the whole text (a run of non-letters
    # across a line break vanishes either way), and keep numpy's temporaries small.
    pieces, start = [], 0
    while start < len(raw):
        end = raw.find(b"\n", start + _PIECE)
        end = len(raw) if end == -1 else end + 1
        pieces.append(_d2l_piece(raw[start:end]))
        start = end
    return b"".join(pieces)


_PIECE = 1 << 25  # bytes


def _d2l_piece(raw: bytes) -> bytes:
    text = np.frombuffer(raw.translate(_D2L_TABLE), dtype=np.uint8)
    space, newline = np.uint8(ord(" ")), np.uint8(ord("\n"))
    # First a run of spaces becomes one space...
    repeated = np.zeros(len(text), dtype=bool)
    repeated[1:] = (text[1:] == space) & (text[:-1] == space)
    text = text[~repeated]
    # ...then a space next to a line break or at either end goes, and so do the line breaks.
    breaks = text == newline
    after_break, before_break = np.ones(len(text), dtype=bool), np.ones(len(text), dtype=bool)
    after_break[1:], before_break[:-1] = breaks[:-1], breaks[1:]
    return text[~(breaks | ((text == space) & (after_break | before_break)))].tobytes()


def _byte_counts(symbols: np.ndarray) -> np.ndarray:
    """How often each byte value occurs. torch counts uint8 as it is, about 20x faster here than
    numpy, which first widens every element to int64."""
    with warnings.catch_warnings():  # a read-only buffer: torch warns, but the tensor is only read
        warnings.simplefilter("ignore", UserWarning)
        return torch.bincount(torch.from_numpy(symbols), minlength=256).numpy()


def frequency_order(symbols: np.ndarray) -> np.ndarray:
    """The distinct symbols, most frequent first, ties in order of first appearance."""
    if not len(symbols):
        return np.zeros(0, dtype=np.int64)
    counts = _byte_counts(symbols) if symbols.dtype == np.uint8 else np.bincount(symbols)
    present = np.flatnonzero(counts)
    first = np.full(len(counts), len(symbols), dtype=np.int64)
    missing, start, chunk = set(present.tolist()), 0, 1 << 16
    while missing:  # first appearances come early in real text: scan growing chunks until all are found
        values, where = np.unique(symbols[start : start + chunk], return_index=True)
        for value, index in zip(values.tolist(), where.tolist(), strict=True):
            if value in missing:
                first[value] = start + index
                missing.discard(value)
        start, chunk = start + chunk, chunk * 2
    return present[np.lexsort((first[present], -counts[present]))]


def _words(
    raw: bytes, preprocess: str, max_tokens: int | None, min_freq: int, max_vocab: int | None
) -> tuple[np.ndarray, Vocab]:
    if preprocess == "d2l":
        # Words of ASCII letters, lower-cased (bytes.lower() touches ASCII only, as the rule does).
        words = re.findall("[a-z]+", raw.lower().decode("utf-8"))
    else:
        words = raw.decode("utf-8").split()  # whitespace includes every line break
    words = words[:max_tokens]
    vocab = Vocab.build(words, joiner=" ", min_freq=min_freq, max_size=max_vocab)
    index = vocab.index
    ids = np.fromiter((index.get(word, 0) for word in words), dtype=np.int64, count=len(words))
    return ids.astype(smallest_dtype(len(vocab))), vocab
