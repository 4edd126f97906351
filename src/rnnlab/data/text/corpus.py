"""From a text file to a list of tokens: reading, d2l or raw preprocessing, char or word tokens."""

from __future__ import annotations

import re
from pathlib import Path

from rnnlab.errors import UserError

PREPROCESSING = ("d2l", "raw")
TOKENS = ("char", "word")


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file, refusing anything that is not one with a message that says why."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"data.path={path} does not exist; give the path of a UTF-8 text file")
    if path.is_dir():
        raise UserError(f"data.path={path} is a directory; give the path of a UTF-8 text file inside it")
    raw = path.read_bytes()
    if not raw.strip():
        raise UserError(f"data.path={path} is empty; a corpus needs some text")
    if b"\x00" in raw:
        raise UserError(f"data.path={path} looks binary (it contains NUL bytes); give a UTF-8 text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"data.path={path} is not UTF-8 (bad byte at offset {error.start}); convert it, "
            f"e.g. `iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8.txt`"
        ) from None


def preprocess(text: str, mode: str = "d2l") -> list[str]:
    """Split text into lines the way the tokenizer expects.

    `d2l` is the book's rule: per line, every run of non-letters becomes one space, then strip and
    lower-case. `raw` keeps every character (case, punctuation, newlines, any script) as one line.
    """
    if mode == "d2l":
        return [re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in text.splitlines()]
    if mode == "raw":
        return [text]
    raise UserError(f"data.preprocess={mode!r} is unknown; choose one of {', '.join(PREPROCESSING)}")


def tokenize(lines: list[str], kind: str = "char") -> list[str]:
    """Char or word tokens of all lines, concatenated.

    As in the book, char tokens of consecutive lines are joined with no separator, and word tokens
    are split per line so that words never run across a line break.
    """
    if kind == "char":
        return [char for line in lines for char in line]
    if kind == "word":
        return [word for line in lines for word in line.split()]
    raise UserError(f"data.tokens={kind!r} is unknown; choose one of {', '.join(TOKENS)}")
