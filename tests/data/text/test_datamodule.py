import hashlib
from pathlib import Path

import pytest
import torch

from rnnlab.data.text.datamodule import LanguageModelData
from rnnlab.errors import UserError

TEXT = (
    "The Time Traveller (for so it will be convenient to speak of him) was expounding a recondite matter.\n"
    * 60
)


def make(tmp_path: Path, **kwargs) -> LanguageModelData:
    kwargs.setdefault("batch_size", 4)
    kwargs.setdefault("num_steps", 10)
    data = LanguageModelData(data_dir=str(tmp_path / "data"), filename="corpus.txt", **kwargs)
    data.prepare_data()
    data.setup("fit")
    return data


def test_explicit_path_is_split_into_contiguous_blocks(tmp_path: Path):
    corpus = tmp_path / "mine.txt"
    corpus.write_text(TEXT)
    data = make(tmp_path, path=str(corpus))
    parts = data.split_tokens
    total = sum(len(t) for t in parts.values())
    assert len(parts["train"]) == int(total * 0.9) and len(parts["val"]) == int(total * 0.05)
    line = "the time traveller for so it will be convenient to speak of him was expounding a recondite matter"
    assert data.vocab.decode(torch.cat(list(parts.values())).tolist()) == line * 60
    assert data.carries_state


def test_data_directory_copy_is_used_when_its_checksum_matches(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "corpus.txt").write_text(TEXT)
    good = hashlib.sha1(TEXT.encode()).hexdigest()
    assert make(tmp_path, sha1=good).vocab_size > 2
    with pytest.raises(UserError, match="does not have the expected SHA-1"):
        make(tmp_path, sha1="0" * 40)


def test_missing_corpus_is_downloaded_into_the_data_directory(tmp_path: Path, http_server):
    url, served = http_server
    (served / "corpus.txt").write_text(TEXT)
    data = make(tmp_path, url=f"{url}/corpus.txt", sha1=hashlib.sha1(TEXT.encode()).hexdigest())
    assert (tmp_path / "data" / "corpus.txt").read_text() == TEXT
    assert data.vocab_size == 1 + len(set(TEXT.lower()) & set("abcdefghijklmnopqrstuvwxyz "))


def test_word_tokens_and_raw_preprocessing(tmp_path: Path):
    corpus = tmp_path / "mine.txt"
    corpus.write_text(TEXT)
    words = make(tmp_path, path=str(corpus), tokens="word", batch_size=2, num_steps=5)
    assert "traveller" in words.vocab.index and words.vocab.joiner == " "
    raw = make(tmp_path, path=str(corpus), preprocess="raw")
    assert {"T", "(", "\n", "."} <= set(raw.vocab.index)


def test_max_tokens_keeps_the_start_of_the_corpus(tmp_path: Path):
    corpus = tmp_path / "mine.txt"
    corpus.write_text(TEXT)
    data = make(tmp_path, path=str(corpus), max_tokens=1000)
    assert sum(len(t) for t in data.split_tokens.values()) == 1000


def test_random_sampling_does_not_carry_state(tmp_path: Path):
    corpus = tmp_path / "mine.txt"
    corpus.write_text(TEXT)
    assert not make(tmp_path, path=str(corpus), sampling="random").carries_state


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "data.batch_size=0 must be positive"),
        ({"num_steps": -3}, "data.num_steps=-3 must be positive"),
        ({"sampling": "shuffled"}, "data.sampling='shuffled' is unknown"),
        ({"splits": [0.5, 0.5, 0.0]}, "must be three positive fractions"),
        ({"batch_size": 512, "num_steps": 35}, "too few for batch_size=512"),
    ],
)
def test_bad_settings_are_refused_before_training(tmp_path: Path, kwargs, message):
    corpus = tmp_path / "mine.txt"
    corpus.write_text(TEXT)
    with pytest.raises(UserError, match=message):
        make(tmp_path, path=str(corpus), **kwargs)


def test_a_corpus_of_one_symbol_is_refused(tmp_path: Path):
    corpus = tmp_path / "mine.txt"
    corpus.write_text("AAAA!\naaaa\n" * 100)  # after d2l preprocessing: only 'a'
    with pytest.raises(UserError, match="has 1 distinct char token"):
        make(tmp_path, path=str(corpus))


def test_text_without_a_path_is_refused():
    with pytest.raises(UserError, match="pass data.path=FILE"):
        LanguageModelData(path=None, filename=None)
