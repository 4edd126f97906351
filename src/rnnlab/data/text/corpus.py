"""The book's rules in plain Python: reading a text file, d2l or raw preprocessing, char or word tokens.

These are the reference: `tokens.encode_file` gives the same ids, vectorised, and is what
rnnlab trains on; the tests hold the two to each other.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path

from rnnlab.errors import UserError

PREPROCESSING = ("d2l", "raw")
TOKENS = ("char", "word", "byte")


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file, refusing anything that is not one with a message that says why."""
    return check_text_file(path).decode("utf-8")


def check_text_file(path: str | Path, decode: bool = True, member: str | None = None) -> bytes:
    """The file's bytes (or those of `member` of a zip archive), after the checks that make a corpus:
    it exists, is a file, is not empty, and (unless `decode` is false: byte tokens take any file) is
    UTF-8 text without NUL bytes."""
    path = check_source_path(path)
    raw = path.read_bytes() if member is None else read_member(path, member)
    if not raw or raw.isspace():  # (isspace stops at the first other byte; strip would copy the file)
        raise UserError(f"data.path={path} is empty; a corpus needs some text")
    if not decode:
        return raw
    if b"\x00" in raw:
        raise UserError(f"data.path={path} looks binary (it contains NUL bytes); give a UTF-8 text file")
    try:
        if not raw.isascii():  # ASCII is UTF-8; checking costs a decode only for other text
            raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"data.path={path} is not UTF-8 (bad byte at offset {error.start}); convert it, "
            f"e.g. `iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8.txt`"
        ) from None
    return raw


def check_source_path(path: str | Path) -> Path:
    """The path, if it names a file (a corpus, or the zip archive that holds one)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"data.path={path} does not exist; give the path of a UTF-8 text file")
    if path.is_dir():
        raise UserError(f"data.path={path} is a directory; give the path of a UTF-8 text file inside it")
    return path


def read_member(path: Path, member: str) -> bytes:
    """One file of a zip archive, decompressed as a stream (the rest of the archive is never read)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if member not in archive.namelist():
                held = ", ".join(archive.namelist()[:10])
                raise UserError(f"{path} holds no {member!r} (it holds {held}); check data.member")
            return archive.read(member)
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise UserError(
            f"{path} is not a complete zip archive ({error}); delete it to download it again"
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
    raise UserError(f"data.tokens={kind!r} is unknown; choose one of char, word")
