"""`TokenCache`: a corpus tokenised once, then memory-mapped by every later run and every process.

A cache lives in `<data_dir>/cache/<file stem>-<key>/`, where the key hashes the source's path and
every setting that changes the ids (preprocessing, token kind, `max_tokens`, the format). It holds
`ids.bin` (the ids, raw, in the smallest unsigned dtype the vocabulary needs), `vocab.json`, and
`meta.json`, written last, which records what the ids were made from (the source's size, mtime and
SHA-1) and what they are (dtype, count, vocabulary size, the SHA-1 of a sample of `ids.bin`, and
how many are `<unk>`).

Checking a cache costs the same for any corpus: it never reads the ids whole (every page of a
memory map that is read counts in the process's resident memory, so a check over all the ids would
hold the whole corpus in memory, at every start, in every DDP rank). A cache is used only when
`meta.json` matches the source (by size and mtime, else by SHA-1) and the settings, `ids.bin` has
the recorded length, `vocab.json` the recorded size, and a sample of `ids.bin` (16 spans of 4 KiB,
from its first bytes to its last) holds ids of the vocabulary and has the recorded SHA-1. The ids
past the sample are trusted: `build` writes only ids of the vocabulary, so one outside it takes
`ids.bin` rewritten in place at its recorded length, which the sample tells unless every changed
byte falls between its spans. Anything else (a crashed build, another source, other settings, an
older format, a file missing, cut short, not parsable or overwritten) is rebuilt under the lock,
with a log line that says why.

Builders take an exclusive lock on the cache folder (`filelock`, on any platform), so processes
that start on the same new corpus at once (DDP ranks, two runs) build it once: the others wait,
then map what the first one wrote.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from rnnlab.atomic import atomic_file, write_text_atomically
from rnnlab.data.files.download import file_digest
from rnnlab.data.text.tokens import encode_file
from rnnlab.data.text.vocab import UNKNOWN, Vocab
from rnnlab.errors import UserError
from rnnlab.readback import Unreadable, read_json, reason_of

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the files' layout or the tokenisation rules change
SAMPLE_SPANS, SPAN_BYTES = 16, 4096  # what a load reads of ids.bin: 64 KiB, whatever the corpus
COUNT_CHUNK = 1 << 24  # ids compared at a time when `build` counts <unk> (a bounded temporary)


def ids_sample(path: Path, itemsize: int) -> bytes:
    """`SAMPLE_SPANS` spans of `SPAN_BYTES` of the file, evenly spaced from its first byte to its
    last and starting on an id's boundary; the whole file when it is no larger. Read, not mapped:
    pages read through a file stay out of the process's memory."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        if size <= SAMPLE_SPANS * SPAN_BYTES:
            return file.read()
        spans = []
        for i in range(SAMPLE_SPANS):
            start = i * (size - SPAN_BYTES) // (SAMPLE_SPANS - 1)
            file.seek(start - start % itemsize)
            spans.append(file.read(SPAN_BYTES))
        return b"".join(spans)


def count_unknown(ids: np.ndarray) -> int:
    """How many ids are `<unk>` (0), counted a chunk at a time."""
    return sum(int(np.count_nonzero(ids[i : i + COUNT_CHUNK] == 0)) for i in range(0, len(ids), COUNT_CHUNK))


class TokenCache:
    """The ids and vocabulary of one source file under one set of settings."""

    def __init__(self, source: Path, root: Path, settings: dict[str, Any]) -> None:
        self.source, self.settings = Path(source), {**settings, "format": FORMAT}
        key = hashlib.sha1(json.dumps([str(self.source.resolve()), self.settings]).encode()).hexdigest()
        self.folder = Path(root).expanduser() / f"{self.source.stem}-{key[:12]}"
        self.meta: dict[str, Any] = {}  # meta.json as the last successful load read it

    # -- reading --------------------------------------------------------------------------------
    def load(self, say_why: bool = True) -> tuple[np.ndarray, Vocab] | None:
        """The mapped ids and the vocabulary, or None (saying why) when there is no valid cache.

        A cache that cannot be read back (a file missing, cut short, not parsable, or disagreeing with
        `meta.json`) is out of date like one of other settings: it is built again."""
        meta_file = self.folder / "meta.json"
        if not meta_file.exists() and not any(
            (self.folder / name).exists() for name in ("ids.bin", "vocab.json")
        ):
            return None  # never built: `build` says so
        try:
            meta = read_json(meta_file)
            problem = self._problem(meta)
            if problem is None:
                vocab = Vocab.from_dict(read_json(self.folder / "vocab.json"))
                sample = ids_sample(self.folder / "ids.bin", np.dtype(meta["dtype"]).itemsize)
                problem = self._mismatch(meta, sample, vocab)
            if problem is None:  # mapping reads nothing: only the pages a batch gathers are ever read
                ids = np.memmap(
                    self.folder / "ids.bin", dtype=meta["dtype"], mode="r", shape=(meta["tokens"],)
                )
        except Unreadable as error:
            problem = f"{error.path.name} is unreadable: {error.reason}"
        except (KeyError, TypeError, ValueError, OSError) as error:  # parsable, but not what build wrote
            problem = f"meta.json or vocab.json does not describe the ids ({reason_of(error)})"
        if problem:
            if say_why:
                log.info("token cache %s is out of date (%s); building it again", self.folder, problem)
            return None
        self._record(meta, sample)
        self.meta = meta
        return ids, vocab

    def _mismatch(self, meta: dict[str, Any], sample: bytes, vocab: Vocab) -> str | None:
        """Files that each parse but do not belong together (one of them damaged or from another
        build), told from the sample of the ids: reading them all is what a cache saves."""
        if len(vocab) != meta["vocab_size"]:
            return f"vocab.json has {len(vocab)} tokens, meta.json says {meta['vocab_size']}"
        ids = np.frombuffer(sample, dtype=meta["dtype"])
        if len(ids) and int(ids.max()) >= len(vocab):
            return "ids.bin holds ids outside the vocabulary"
        recorded = meta.get("sample_sha1")  # absent from a cache built before it was recorded
        if recorded is not None and hashlib.sha1(sample).hexdigest() != recorded:
            return "ids.bin is not the one meta.json describes (a sample of it differs)"
        return None

    def _problem(self, meta: dict[str, Any]) -> str | None:
        if meta.get("settings") != self.settings:
            return "other settings or an older format"
        ids = self.folder / "ids.bin"
        if not ids.exists() or ids.stat().st_size != meta["tokens"] * np.dtype(meta["dtype"]).itemsize:
            return "ids.bin is missing or truncated"
        stat = self.source.stat()
        recorded = meta["source"]
        if (stat.st_size, stat.st_mtime_ns) == (recorded["size"], recorded["mtime_ns"]):
            return None
        if stat.st_size != recorded["size"] or file_digest(self.source) != recorded["sha1"]:
            return "the source file changed"
        return None

    def _record(self, meta: dict[str, Any], sample: bytes) -> None:
        """Note in meta.json the new mtime of a source touched but unchanged (same SHA-1), so that
        later runs need not hash it again, and the sample's SHA-1 where an older build did not record
        it, so that later runs check it. Best effort: a cache another user owns stays valid without."""
        changes = {}
        mtime = self.source.stat().st_mtime_ns
        if meta["source"]["mtime_ns"] != mtime:
            changes["source"] = {**meta["source"], "mtime_ns": mtime}
        if "sample_sha1" not in meta:
            changes["sample_sha1"] = hashlib.sha1(sample).hexdigest()
        if not changes:
            return
        meta.update(changes)
        with suppress(OSError):
            write_text_atomically(self.folder / "meta.json", json.dumps(meta, indent=2) + "\n")

    # -- writing --------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(self.folder / ".lock"):  # blocks until the builder before it has let go
            yield

    def ensure(self) -> tuple[np.ndarray, Vocab]:
        """The mapped ids and vocabulary, built first unless a valid cache exists (another process
        may have just built it)."""
        loaded = self.load(say_why=False)  # the check under the lock says why, once
        if loaded is not None:
            return loaded
        try:
            with self._locked():
                loaded = self.load()  # built while this process waited for the lock?
                if loaded is None:
                    self.build()
                    loaded = self.load()
                return loaded
        except OSError as error:  # a full disk, a folder that turned read-only
            raise UserError(
                f"could not write the token cache {self.folder} ({error.strerror or error}); free some space "
                "or pass data.cache=false to keep the tokens in memory"
            ) from None

    def build(self) -> tuple[np.ndarray, Vocab]:
        stat, sha1 = self.source.stat(), file_digest(self.source)
        log.info("tokenising %s once into %s", self.source, self.folder)
        ids, vocab = encode_file(self.source, **{k: v for k, v in self.settings.items() if k != "format"})
        after = self.source.stat()
        if (after.st_size, after.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            raise UserError(
                f"{self.source} changed while it was being tokenised; run again once it is written"
            )
        (self.folder / "meta.json").unlink(missing_ok=True)  # the old meta no longer describes the ids
        with atomic_file(self.folder / "ids.bin") as file:
            file.write(memoryview(np.ascontiguousarray(ids)).cast("B"))
        write_text_atomically(self.folder / "vocab.json", json.dumps(vocab.to_dict()))
        meta = {
            "settings": self.settings,
            "dtype": ids.dtype.name,
            "tokens": len(ids),
            "vocab_size": len(vocab),
            "sample_sha1": hashlib.sha1(ids_sample(self.folder / "ids.bin", ids.dtype.itemsize)).hexdigest(),
            # for the log line of a shortened word vocabulary: counted now, while the ids are in memory
            "unknown_tokens": count_unknown(ids) if vocab.tokens[0] == UNKNOWN else None,
            "source": {
                "path": str(self.source.resolve()),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "sha1": sha1,
            },
        }
        write_text_atomically(self.folder / "meta.json", json.dumps(meta, indent=2) + "\n")
        return ids, vocab


def writable(folder: Path) -> bool:
    """Whether files can be created in `folder` (made if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)
