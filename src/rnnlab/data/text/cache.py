"""`TokenCache`: a corpus tokenised once, then memory-mapped by every later run and every process.

A cache lives in `<data_dir>/cache/<file stem>-<key>/`, where the key hashes the source's path and
every setting that changes the ids (preprocessing, token kind, `max_tokens`, the format). It holds
`ids.bin` (the ids, raw, in the smallest unsigned dtype the vocabulary needs), `vocab.json`, and
`meta.json`, written last, which records what the ids were made from: the source's size, mtime and
SHA-1. A cache is used only when `meta.json` matches the source (by size and mtime, else by SHA-1)
and the settings, `ids.bin` has the recorded length and `vocab.json` the recorded size; anything else
(a crashed build, another source, other settings, an older format, a file missing, cut short or not
parsable) is rebuilt under the lock, with a log line that says why.

Builders take an exclusive lock on the cache folder, so processes that start on the same new corpus
at once (DDP ranks, two runs) build it once: the others wait, then map what the first one wrote.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.atomic import atomic_file, write_text_atomically
from rnnlab.data.files.download import file_digest
from rnnlab.data.text.tokens import encode_file
from rnnlab.data.text.vocab import Vocab
from rnnlab.errors import UserError
from rnnlab.readback import Unreadable, read_json, reason_of

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the files' layout or the tokenisation rules change


class TokenCache:
    """The ids and vocabulary of one source file under one set of settings."""

    def __init__(self, source: Path, root: Path, settings: dict[str, Any]) -> None:
        self.source, self.settings = Path(source), {**settings, "format": FORMAT}
        key = hashlib.sha1(json.dumps([str(self.source.resolve()), self.settings]).encode()).hexdigest()
        self.folder = Path(root).expanduser() / f"{self.source.stem}-{key[:12]}"

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
                shape = (meta["tokens"],)
                ids = np.memmap(self.folder / "ids.bin", dtype=meta["dtype"], mode="r", shape=shape)
                problem = self._mismatch(meta, ids, vocab)
        except Unreadable as error:
            problem = f"{error.path.name} is unreadable: {error.reason}"
        except (KeyError, TypeError, ValueError, OSError) as error:  # parsable, but not what build wrote
            problem = f"meta.json or vocab.json does not describe the ids ({reason_of(error)})"
        if problem:
            if say_why:
                log.info("token cache %s is out of date (%s); building it again", self.folder, problem)
            return None
        self._record_mtime(meta)
        return ids, vocab

    def _mismatch(self, meta: dict[str, Any], ids: np.ndarray, vocab: Vocab) -> str | None:
        """Files that each parse but do not belong together (one of them damaged or from another build)."""
        if len(vocab) != meta["vocab_size"]:
            return f"vocab.json has {len(vocab)} tokens, meta.json says {meta['vocab_size']}"
        if len(ids) and int(ids.max()) >= len(vocab):
            return "ids.bin holds ids outside the vocabulary"
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

    def _record_mtime(self, meta: dict[str, Any]) -> None:
        """A source touched but unchanged (same SHA-1): record its new mtime, so that later runs need
        not hash it again. Best effort: a cache another user owns stays valid without it."""
        mtime = self.source.stat().st_mtime_ns
        if meta["source"]["mtime_ns"] == mtime:
            return
        meta["source"]["mtime_ns"] = mtime
        with suppress(OSError):
            write_text_atomically(self.folder / "meta.json", json.dumps(meta, indent=2) + "\n")

    # -- writing --------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

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
