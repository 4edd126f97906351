"""The token cache: built once, mapped after, rebuilt (saying so) whenever it does not match."""

import json
import logging
import multiprocessing
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.text.cache import TokenCache
from rnnlab.data.text.tokens import encode_file

SETTINGS = {"preprocess": "d2l", "tokens": "char", "max_tokens": None}
TEXT = "The Time Traveller (for so it will be convenient to speak of him) was expounding.\n" * 200


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    return path


def built(source: Path, root: Path, **settings) -> TokenCache:
    cache = TokenCache(source, root, {**SETTINGS, **settings})
    cache.ensure()
    return cache


def test_the_first_run_builds_and_later_runs_map_the_same_ids(source, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    cache = built(source, tmp_path / "cache")
    assert sorted(p.name for p in cache.folder.iterdir()) == [".lock", "ids.bin", "meta.json", "vocab.json"]
    assert caplog.text.count("tokenising") == 1
    ids, vocab = cache.load()
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint8
    expected_ids, expected_vocab = encode_file(source, **SETTINGS)
    assert np.array_equal(ids, expected_ids) and vocab == expected_vocab
    built(source, tmp_path / "cache")  # a second run: nothing to do
    assert caplog.text.count("tokenising") == 1


def break_ids(cache: TokenCache) -> None:
    with open(cache.folder / "ids.bin", "r+b") as file:
        file.truncate(10)


def other_source(cache: TokenCache) -> None:
    cache.source.write_text(TEXT.upper() + "more text\n")


def other_format(cache: TokenCache) -> None:
    meta = json.loads((cache.folder / "meta.json").read_text())
    meta["settings"]["format"] = 0
    (cache.folder / "meta.json").write_text(json.dumps(meta))


def crashed_build(cache: TokenCache) -> None:
    (cache.folder / "meta.json").unlink()  # what a kill between the ids and the metadata leaves


def cut_in_half(name: str):
    def damage(cache: TokenCache) -> None:
        data = (cache.folder / name).read_bytes()
        (cache.folder / name).write_bytes(data[: len(data) // 2])

    return damage


def garbage(name: str, data: bytes = b"\xff\xfe not what was written \x00"):
    def damage(cache: TokenCache) -> None:
        (cache.folder / name).write_bytes(data)

    return damage


def deleted(name: str):
    def damage(cache: TokenCache) -> None:
        (cache.folder / name).unlink()

    return damage


def ids_out_of_range(cache: TokenCache) -> None:
    size = (cache.folder / "ids.bin").stat().st_size
    garbage("ids.bin", b"\xff" * size)(cache)  # the recorded length, but no such token


def ids_in_range_but_others(cache: TokenCache) -> None:
    size = (cache.folder / "ids.bin").stat().st_size
    garbage("ids.bin", b"\x01" * size)(cache)  # the recorded length, every id a token: told by the sample


def another_vocabulary(cache: TokenCache) -> None:
    vocab = json.loads((cache.folder / "vocab.json").read_text())
    vocab["tokens"] = vocab["tokens"][:5]
    (cache.folder / "vocab.json").write_text(json.dumps(vocab))


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (break_ids, "ids.bin is missing or truncated"),
        (other_source, "the source file changed"),
        (other_format, "other settings or an older format"),
        (crashed_build, "meta.json is unreadable: missing"),
        (cut_in_half("meta.json"), "meta.json is unreadable: JSONDecodeError"),
        (garbage("meta.json"), "meta.json is unreadable: UnicodeDecodeError"),
        (garbage("meta.json", b"[1, 2]"), "meta.json is unreadable: holds a list, not a dict"),
        (cut_in_half("vocab.json"), "vocab.json is unreadable: JSONDecodeError"),
        (garbage("vocab.json"), "vocab.json is unreadable: UnicodeDecodeError"),
        (deleted("vocab.json"), "vocab.json is unreadable: missing"),
        (garbage("vocab.json", b"{}"), "meta.json or vocab.json does not describe the ids (KeyError"),
        (another_vocabulary, "vocab.json has 5 tokens, meta.json says"),
        (cut_in_half("ids.bin"), "ids.bin is missing or truncated"),
        (garbage("ids.bin"), "ids.bin is missing or truncated"),
        (deleted("ids.bin"), "ids.bin is missing or truncated"),
        (ids_out_of_range, "ids.bin holds ids outside the vocabulary"),
        (ids_in_range_but_others, "ids.bin is not the one meta.json describes (a sample of it differs)"),
    ],
)
def test_a_cache_that_does_not_match_is_rebuilt_and_never_used(source, tmp_path, caplog, damage, said):
    cache = built(source, tmp_path / "cache")
    damage(cache)
    caplog.set_level(logging.INFO)
    assert cache.load() is None
    assert said in caplog.text
    caplog.clear()
    cache.ensure()  # under the lock, one line says why, then it builds
    assert caplog.text.count("out of date") == 1 and said in caplog.text
    ids, vocab = cache.load()
    expected_ids, expected_vocab = encode_file(source, **SETTINGS)
    assert np.array_equal(ids, expected_ids) and vocab == expected_vocab


def test_a_touched_but_unchanged_source_keeps_its_cache(source, tmp_path, caplog):
    cache = built(source, tmp_path / "cache")
    os.utime(source, ns=(1, 1))  # another mtime, same bytes: checked by SHA-1, not rebuilt
    caplog.set_level(logging.INFO)
    assert cache.load() is not None and "out of date" not in caplog.text
    assert json.loads((cache.folder / "meta.json").read_text())["source"]["mtime_ns"] == 1  # not hashed again


@pytest.mark.parametrize("where", [0, -1])
def test_ids_rewritten_at_either_end_of_a_large_cache_are_told_from_its_sample(tmp_path, caplog, where):
    source = tmp_path / "large.txt"
    source.write_text(TEXT * 10)  # 166 kB of ids: sampled in spans, not read whole
    cache = built(source, tmp_path / "cache", preprocess="raw")
    ids = np.fromfile(cache.folder / "ids.bin", dtype=np.uint8)
    ids[where] = (ids[where] + 1) % cache.meta["vocab_size"]  # another token of the vocabulary
    ids.tofile(cache.folder / "ids.bin")
    caplog.set_level(logging.INFO)
    assert cache.load() is None and "a sample of it differs" in caplog.text


def test_a_cache_built_before_the_sample_was_recorded_is_used_and_gets_it(source, tmp_path, caplog):
    cache = built(source, tmp_path / "cache")
    meta = json.loads((cache.folder / "meta.json").read_text())
    recorded = meta.pop("sample_sha1")
    (cache.folder / "meta.json").write_text(json.dumps(meta))
    caplog.set_level(logging.INFO)
    assert cache.load() is not None and "out of date" not in caplog.text
    assert json.loads((cache.folder / "meta.json").read_text())["sample_sha1"] == recorded


def test_each_setting_that_changes_the_ids_has_its_own_cache(source, tmp_path):
    folders = {
        built(source, tmp_path / "cache", **change).folder
        for change in ({}, {"tokens": "word"}, {"preprocess": "raw"}, {"max_tokens": 100})
    }
    assert len(folders) == 4


def record(path: str, event: str) -> None:
    with open(path, "a") as file:
        file.write(f"{event} {os.getpid()} {time.monotonic()}\n")


def events(path: Path) -> list[tuple[str, int, float]]:
    return [(e, int(pid), float(t)) for e, pid, t in (line.split() for line in path.read_text().splitlines())]


def build_in_another_process(source: str, root: str, log: str, processes: int) -> None:
    """`ensure` the cache, recording when this process asks for the lock, gets it, and builds. A
    build starts only once every process has asked for the lock, so they all overlap with it."""
    from contextlib import contextmanager

    original_locked, original_build = TokenCache._locked, TokenCache.build

    @contextmanager
    def locked(self):
        record(log, "wants-lock")
        with original_locked(self):
            record(log, "has-lock")
            yield

    def build_once_all_wait(self):
        deadline = time.monotonic() + 60
        while sum(e == "wants-lock" for e, _, _ in events(Path(log))) < processes:
            assert time.monotonic() < deadline, "the other processes never asked for the lock"
            time.sleep(0.01)
        record(log, "build-start")
        result = original_build(self)
        record(log, "build-end")
        return result

    TokenCache._locked, TokenCache.build = locked, build_once_all_wait  # this process only (forked)
    TokenCache(Path(source), Path(root), SETTINGS).ensure()


def test_processes_starting_on_a_new_corpus_at_once_build_it_once(source, tmp_path):
    log = tmp_path / "events.txt"
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(
            target=build_in_another_process, args=(str(source), str(tmp_path / "cache"), str(log), 3)
        )
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    for worker in workers:
        if worker.exitcode is None:
            worker.kill()
    seen = events(log)
    assert all(worker.exitcode == 0 for worker in workers), seen
    builds = [(pid, t) for e, pid, t in seen if e == "build-end"]
    assert len(builds) == 1, seen  # one built it; the others waited, then mapped it
    (builder, built), *_ = builds
    waited = {pid: t for e, pid, t in seen if e == "wants-lock" and pid != builder}
    got = {pid: t for e, pid, t in seen if e == "has-lock" and pid != builder}
    assert len(waited) == 2 and all(t < built for t in waited.values()), seen  # asked while it built
    assert len(got) == 2 and all(t > built for t in got.values()), seen  # and got the lock after
    assert TokenCache(source, tmp_path / "cache", SETTINGS).load() is not None


def test_the_cache_imports_where_there_is_no_fcntl():
    """Windows has no fcntl: the builders' lock comes from filelock, which picks the platform's own."""
    import subprocess
    import sys

    code = "import sys; sys.modules['fcntl'] = None; import rnnlab.data.text.cache"  # import fcntl fails
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_disk_that_cannot_hold_the_cache_is_one_line_and_leaves_no_cache(source, tmp_path, monkeypatch):
    import errno

    from rnnlab.data.text import cache as cache_module
    from rnnlab.errors import UserError

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module, "atomic_file", full)
    cache = TokenCache(source, tmp_path / "cache", SETTINGS)
    with pytest.raises(
        UserError,
        match=r"could not write the token cache .* \(No space left on device\); "
        r"free some space or pass data.cache=false",
    ):
        cache.ensure()
    assert cache.load() is None and not (cache.folder / "meta.json").exists()


def test_a_source_rewritten_while_it_is_tokenised_leaves_no_cache(source, tmp_path, monkeypatch):
    from rnnlab.data.text import cache as cache_module
    from rnnlab.errors import UserError

    def rewrite_meanwhile(path, **settings):
        result = encode_file(path, **settings)
        source.write_text(TEXT.replace("T", "W"))  # same size, other bytes, a new mtime
        os.utime(source, ns=(10**18, 10**18))
        return result

    monkeypatch.setattr(cache_module, "encode_file", rewrite_meanwhile)
    cache = TokenCache(source, tmp_path / "cache", SETTINGS)
    with pytest.raises(UserError, match="changed while it was being tokenised"):
        cache.ensure()
    assert cache.load() is None


def test_a_corpus_with_too_few_tokens_is_refused_before_anything_is_cached(tmp_path):
    from rnnlab.errors import UserError

    digits = tmp_path / "digits.txt"
    digits.write_text("123 456\n!!!\n")
    cache = TokenCache(digits, tmp_path / "cache", SETTINGS)
    with pytest.raises(UserError, match="has 0 distinct char token"):
        cache.ensure()
    assert not (cache.folder / "meta.json").exists() and not (cache.folder / "ids.bin").exists()


def test_cache_files_get_the_permissions_of_any_new_file(source, tmp_path):
    previous = os.umask(0o022)
    try:
        cache = built(source, tmp_path / "cache")
    finally:
        os.umask(previous)
    assert all((cache.folder / name).stat().st_mode & 0o777 == 0o644 for name in ("ids.bin", "meta.json"))


# -- what a load reads of the ids -----------------------------------------------------------------
def mapped_kib(path: Path) -> int:
    """KiB of `path` in this process's memory maps now (the pages a read has mapped: its share of RSS)."""
    target, total, inside = os.path.realpath(path), 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's header
            inside = len(fields) >= 6 and fields[5] == target
        elif inside and fields and fields[0] == "Rss:":
            total += int(fields[1])
    return total


needs_smaps = pytest.mark.skipif(
    not Path("/proc/self/smaps").exists(), reason="counts mapped pages as Linux lists them"
)


@needs_smaps
def test_loading_a_cache_reads_a_few_pages_of_its_ids_never_all_of_them(tmp_path):
    source = tmp_path / "big.txt"
    source.write_text(TEXT * 500)  # 8 MB of ids: 2,000 pages
    cache = built(source, tmp_path / "cache", preprocess="raw")
    ids, vocab = cache.load()
    size_kib = ids.nbytes // 1024
    assert size_kib > 8000 and mapped_kib(cache.folder / "ids.bin") < 256  # a few pages, at most
    del ids
    for _ in range(3):  # a later run and each process of a DDP run: the same
        ids, vocab = cache.load()
    assert mapped_kib(cache.folder / "ids.bin") < 256
    int(ids.max())  # what the check used to do: every page mapped, as this count sees it
    assert mapped_kib(cache.folder / "ids.bin") > size_kib * 0.9


@needs_smaps
def test_a_run_on_a_warm_cache_reads_none_of_its_ids_before_training(tmp_path, caplog):
    """The datamodule's prepare and setup on a built cache: the splits, the samplers and the log line
    (with the share of <unk> a shortened word vocabulary gives, as the cache counted it at its build)."""
    from rnnlab.data.text.datamodule import LanguageModelData

    corpus = tmp_path / "words.txt"
    corpus.write_text(TEXT * 800 + "zebra quokka\n")  # 2.2 million words; two seen once
    settings = {"path": str(corpus), "tokens": "word", "min_freq": 2, "batch_size": 4, "num_steps": 10}

    def ready(**more) -> LanguageModelData:
        data = LanguageModelData(data_dir=str(tmp_path / "data"), **settings, **more)
        data.prepare_data()
        data.setup("fit")
        return data

    ready()  # builds the cache
    caplog.set_level(logging.INFO)
    caplog.clear()  # the build's own line, if an earlier test left INFO on: only the two runs below count
    warm = ready()
    (ids_file,) = (tmp_path / "data" / "cache").glob("*/ids.bin")
    assert ids_file.stat().st_size > 2_000_000 and mapped_kib(ids_file) < 256
    in_memory = ready(cache=False)
    (share,) = set(re.findall(r"\(\S+ of the words read as <unk>\)", caplog.text))
    assert caplog.text.count(share) == 2  # the cached run's line and the in-memory one's agree
    assert warm.vocab == in_memory.vocab and "zebra" not in warm.vocab.index
    np.count_nonzero(warm.split_tokens["train"] == 0)  # reading the ids: seen by the count
    assert mapped_kib(ids_file) > ids_file.stat().st_size / 1024 * 0.8
