"""The vectorised tokeniser gives the ids and the vocabulary order of the book's rules, written plainly."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.files.download import BUNDLED
from rnnlab.data.text.corpus import preprocess, read_text, tokenize
from rnnlab.data.text.tokens import encode_file, smallest_dtype
from rnnlab.data.text.vocab import ByteVocab, Vocab
from rnnlab.errors import UserError

# Scripts, emoji, CRLF and every other line break str.splitlines() knows, a non-ASCII "K" (Kelvin
# sign, whose lower case is ASCII "k"), runs of spaces and lines with no letters.
MIXED = (
    "Größe, 時間!\r\nNew line.\rCR only\x0bvt\x0cff\x1cfs\x1dgs\x1ers\x85nel\u2028ls\u2029ps  end 😀 emoji\n"
    "\nThe END\tx\x1fy\u00a0z Kelvin\u212a \n  \n lead\n"
) * 3


def by_the_book(path: Path, mode: str, kind: str, max_tokens: int | None = None):
    tokens = tokenize(preprocess(read_text(path), mode), kind)[:max_tokens]
    vocab = Vocab.build(tokens, joiner=" " if kind == "word" else "")
    return np.array(vocab.encode(tokens)), vocab


@pytest.fixture(params=["timemachine", "mixed"])
def corpus(request, tmp_path: Path) -> Path:
    if request.param == "timemachine":
        return BUNDLED / "timemachine.txt"
    path = tmp_path / "mixed.txt"
    path.write_bytes(MIXED.encode())
    return path


@pytest.mark.parametrize("mode", ["d2l", "raw"])
@pytest.mark.parametrize("kind", ["char", "word"])
@pytest.mark.parametrize("max_tokens", [None, 500])
def test_same_ids_and_vocabulary_order_as_the_books_rules(corpus, mode, kind, max_tokens):
    expected_ids, expected_vocab = by_the_book(corpus, mode, kind, max_tokens)
    ids, vocab = encode_file(corpus, mode, kind, max_tokens)
    assert vocab.tokens == expected_vocab.tokens and vocab.joiner == expected_vocab.joiner
    assert np.array_equal(ids.astype(np.int64), expected_ids)
    assert ids.dtype == smallest_dtype(len(vocab))


def test_the_books_vocabulary_of_the_time_machine():
    ids, vocab = encode_file(BUNDLED / "timemachine.txt", "d2l", "char")
    assert len(vocab) == 28 and vocab.tokens[:4] == ["<unk>", " ", "e", "t"] and len(ids) == 170_580
    assert ids.dtype == np.uint8


def test_byte_tokens_are_the_files_bytes_whatever_it_holds(tmp_path: Path):
    path = tmp_path / "any.bin"
    content = MIXED.encode() + bytes(range(256)) + "caf\xe9".encode("latin-1")  # not UTF-8
    path.write_bytes(content)
    ids, vocab = encode_file(path, "raw", "byte")
    assert isinstance(vocab, ByteVocab) and len(vocab) == 256 and ids.dtype == np.uint8
    assert ids.tobytes() == content
    assert vocab.decode(vocab.encode(vocab.split("Größe 😀"))) == "Größe 😀"
    assert Vocab.from_dict(vocab.to_dict()) == vocab
    with pytest.raises(
        UserError, match="data.tokens=byte reads the file's bytes as they are; use data.preprocess=raw"
    ):
        encode_file(path, "d2l", "byte")


@pytest.mark.parametrize(
    ("size", "dtype"), [(2, np.uint8), (256, np.uint8), (257, np.uint16), (70_000, np.uint32)]
)
def test_ids_take_the_smallest_unsigned_type(size, dtype):
    assert smallest_dtype(size) is dtype


def test_a_zip_member_is_read_and_a_wrong_archive_or_member_is_one_line(tmp_path: Path):
    archive = tmp_path / "corpus.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("text8", "anarchism originated as a term of abuse " * 50)
    ids, vocab = encode_file(archive, "raw", "char", member="text8")
    assert vocab.decode(ids.tolist()) == "anarchism originated as a term of abuse " * 50
    with pytest.raises(UserError, match=r"holds no 'enwik8' \(it holds text8\); check data.member"):
        encode_file(archive, "raw", "byte", member="enwik8")
    not_zip = tmp_path / "plain.txt"
    not_zip.write_text("just text")
    with pytest.raises(UserError, match="is not a complete zip archive"):
        encode_file(not_zip, "raw", "char", member="text8")


def test_the_d2l_rule_in_pieces_equals_the_whole_text(monkeypatch, tmp_path: Path):
    """Long texts are processed in pieces that end at line breaks; the result must not depend on them."""
    import random

    from rnnlab.data.text import tokens

    rng = random.Random(0)
    text = "".join(rng.choice("ab \n\r,.\x0bZ\u2028é時") for _ in range(20_000))
    monkeypatch.setattr(tokens, "_PIECE", 97)
    path = tmp_path / "pieces.txt"
    path.write_text(text, encoding="utf-8", newline="")
    expected_ids, expected_vocab = by_the_book(path, "d2l", "char")
    ids, vocab = encode_file(path, "d2l", "char")
    assert vocab == expected_vocab and np.array_equal(ids.astype(np.int64), expected_ids)
