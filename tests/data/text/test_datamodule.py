import hashlib
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.text.cache import writable
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
    assert data.vocab.decode(np.concatenate(list(parts.values())).tolist()) == line * 60
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


def test_a_shortened_word_vocabulary_reads_rare_words_as_unknown(tmp_path: Path, caplog):
    corpus = tmp_path / "mine.txt"
    corpus.write_text(TEXT + "zebra zebra quokka\n" * 2)
    full = make(tmp_path, path=str(corpus), tokens="word", batch_size=2, num_steps=5)
    caplog.set_level("INFO")
    rare = make(tmp_path, path=str(corpus), tokens="word", batch_size=2, num_steps=5, min_freq=10)
    assert {"zebra", "quokka"} <= set(full.vocab.index)
    assert not {"zebra", "quokka"} & set(rare.vocab.index) and len(rare.vocab) < len(full.vocab)
    assert (rare.split_tokens["test"] == 0).sum() == 6  # the last words: zebra zebra quokka, twice
    assert "of the words read as <unk>" in caplog.text
    top = make(tmp_path, path=str(corpus), tokens="word", batch_size=2, num_steps=5, max_vocab=5)
    assert top.vocab.tokens == full.vocab.tokens[:5]


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
        ({"splits": [0.5, 0.0, 0.5]}, "must be three positive fractions"),
        ({"batch_size": 512, "num_steps": 35}, "too few for batch_size=512"),
        ({"min_freq": 3}, "data.min_freq and data.max_vocab shorten a word vocabulary"),
        ({"tokens": "word", "max_vocab": 2}, "data.max_vocab=2 must be at least 3"),
        ({"tokens": "word", "min_freq": 0}, "data.min_freq=0 must be positive"),
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


def test_tokens_are_cached_in_the_data_directory_and_mapped(tmp_path: Path):
    corpus = tmp_path / "mine.txt"
    corpus.write_text(TEXT)
    data = make(tmp_path, path=str(corpus))
    (folder,) = (tmp_path / "data" / "cache").iterdir()
    assert (folder / "ids.bin").stat().st_size == sum(len(t) for t in data.split_tokens.values())  # uint8
    assert isinstance(data.split_tokens["train"].base, np.memmap) or isinstance(
        data.split_tokens["train"], np.memmap
    )
    again = make(tmp_path, path=str(corpus), cache=False)
    assert again.vocab == data.vocab
    assert all(np.array_equal(again.split_tokens[s], data.split_tokens[s]) for s in ("train", "val", "test"))


def test_a_data_directory_that_cannot_be_written_keeps_the_tokens_in_memory(tmp_path: Path, caplog):
    corpus = tmp_path / "mine.txt"
    corpus.write_text(TEXT)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")  # nothing can be created under it, whoever runs the test
    assert not writable(blocked / "cache")
    data = LanguageModelData(path=str(corpus), data_dir=str(blocked), batch_size=4, num_steps=10)
    data.prepare_data()
    data.setup("fit")
    assert "cannot be written: tokens stay in memory" in caplog.text and len(data.split_tokens["train"]) > 0


def test_byte_tokens_read_any_file_as_256_symbols(tmp_path: Path):
    corpus = tmp_path / "bytes.bin"
    corpus.write_bytes(TEXT.encode() + bytes(range(256)) * 4)
    data = make(tmp_path, path=str(corpus), preprocess="raw", tokens="byte")
    assert data.vocab_size == 256 and data.task_inputs().token_kind == "byte"
    joined = np.concatenate([data.split_tokens[s] for s in ("train", "val", "test")])
    assert joined.tobytes() == corpus.read_bytes()


def test_validation_and_test_can_be_capped_and_the_run_says_so(tmp_path: Path):
    corpus = tmp_path / "mine.txt"
    corpus.write_text(TEXT * 4)
    data = make(tmp_path, path=str(corpus), eval_max_tokens=100)
    assert len(data.split_tokens["val"]) == 100 and data.held_out["val"] > 100
    assert len(data.split_tokens["test"]) == data.held_out["test"]  # the test block stays whole
    assert data.summary() == {"eval_mode": "stream", "val_tokens_scored": 100}
    capped = make(tmp_path, path=str(corpus), eval_max_tokens=100, test_max_tokens=50)
    assert capped.summary() == {"eval_mode": "stream", "val_tokens_scored": 100, "test_tokens_scored": 50}


def test_pickled_for_spawned_processes_without_the_corpus(tmp_path: Path):
    import pickle

    corpus = tmp_path / "mine.txt"
    corpus.write_text(TEXT * 20)
    data = make(tmp_path, path=str(corpus))
    pickled = pickle.dumps(data)
    assert len(pickled) < corpus.stat().st_size / 4  # not a copy of the mapped tokens
    again = pickle.loads(pickled)
    again.setup("fit")  # maps the cache again
    assert again.vocab == data.vocab and np.array_equal(
        again.split_tokens["train"], data.split_tokens["train"]
    )


def test_a_zero_test_fraction_is_nanogpts_split_train_the_first_90_percent_val_the_rest(tmp_path: Path):
    corpus = tmp_path / "shakespeare.txt"
    corpus.write_text(TEXT[:5997])  # 0.9 x 5997 = 5397.3: train takes int() of it, as nanoGPT's prepare.py
    data = make(tmp_path, path=str(corpus), preprocess="raw", splits=[0.9, 0.1, 0.0])
    assert [len(data.split_tokens[s]) for s in ("train", "val", "test")] == [5397, 600, 0]
    assert not data.has_test_split
    assert "".join(data.vocab.tokens[i] for i in data.split_tokens["val"][:20]) == TEXT[5397:5417]


def test_windowed_evaluation_is_named_in_the_summary_and_its_window_must_fit(tmp_path: Path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    data = make(tmp_path, path=str(corpus), eval_mode="windowed", eval_num_steps=64)
    assert data.summary()["eval_mode"] == "windowed" and data.summary()["eval_window"] == 64
    assert not data.task_inputs().eval_carries_state
    with pytest.raises(UserError, match="data.eval_num_steps=9999 is longer than"):
        make(tmp_path, path=str(corpus), eval_mode="windowed", eval_num_steps=9999)
    with pytest.raises(UserError, match="data.eval_mode='sliding' is unknown"):
        make(tmp_path, path=str(corpus), eval_mode="sliding")
