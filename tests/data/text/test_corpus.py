from pathlib import Path

import pytest

from rnnlab.data.text.corpus import preprocess, read_text, tokenize
from rnnlab.errors import UserError


def test_d2l_preprocessing_keeps_letters_and_spaces_lowercased_and_joins_lines():
    lines = preprocess("The Time-Machine!\n\n  By H. G. Wells [1898]\n", "d2l")
    assert lines == ["the time machine", "", "by h g wells"]
    # the book concatenates the characters of consecutive lines with no separator
    assert "".join(tokenize(lines, "char")) == "the time machineby h g wells"


def test_word_tokens_never_run_across_lines():
    lines = preprocess("time traveller\nsaid the\n", "d2l")
    assert tokenize(lines, "word") == ["time", "traveller", "said", "the"]


def test_raw_preprocessing_keeps_every_character():
    text = "Größe, 時間!\nNew line."
    assert "".join(tokenize(preprocess(text, "raw"), "char")) == text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("dir", "is a directory"),
        (b"", "is empty"),
        (b"abc\x00\x01def", "looks binary"),
        ("caf\xe9".encode("latin-1"), "is not UTF-8"),
    ],
)
def test_read_text_refuses_what_is_not_utf8_text(tmp_path: Path, content, message):
    path = tmp_path / "corpus.txt"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message) as error:
        read_text(path)
    assert str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_modes_are_refused():
    with pytest.raises(UserError, match="data.preprocess='bpe'"):
        preprocess("text", "bpe")
    with pytest.raises(UserError, match="data.tokens='bytes'"):
        tokenize(["text"], "bytes")
