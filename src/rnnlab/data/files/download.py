"""Data files: read whether gzipped or not, checksummed, and downloaded verified and never partial."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from rnnlab.atomic import atomic_file
from rnnlab.errors import UserError

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"


def default_data_dir() -> str:
    """The data directory of a datamodule built without one: `$RNNLAB_DATA_DIR`, as the configs'
    `paths.data_dir` reads it, else `~/.cache/rnnlab`."""
    return os.environ.get("RNNLAB_DATA_DIR") or "~/.cache/rnnlab"


AGAIN = "delete it to download it again (or replace it with a good copy)"


def is_gzip(path: str | Path) -> bool:
    """Told by the file's first bytes, not its name (copies get renamed, or kept decompressed)."""
    with open(path, "rb") as file:
        return file.read(2) == GZIP_MAGIC


def read_content(path: str | Path) -> bytes:
    """The file's bytes, decompressed if it is gzip."""
    path = Path(path)
    try:
        if not is_gzip(path):
            return path.read_bytes()
        with gzip.open(path, "rb") as file:
            return file.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise UserError(f"{path} is a corrupt or truncated gzip file ({error}); {AGAIN}") from None
    except OSError as error:
        raise UserError(f"cannot read {path} ({error.strerror}); check data.path / data.data_dir") from None


def file_digest(path: str | Path, algorithm: str = "sha1", content: bool = False) -> str:
    """The file's checksum; with `content`, that of what it holds (decompressed if it is gzip)."""
    digest = hashlib.new(algorithm)
    if content:
        digest.update(read_content(path))
        return digest.hexdigest()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Small public files shipped inside the package (see its README), for use with no network.
BUNDLED = Path(__file__).resolve().parent.parent / "bundled"


@dataclass(frozen=True)
class DataFile:
    """Where a one-file dataset comes from, in order: `path`; else `filename` in `data_dir`; else the
    copy shipped with rnnlab, if it is this file (same checksum); else a download of `url` into
    `data_dir`, verified against `sha256` or `sha1` (of the decompressed `content`, if set) before it
    is used. A data-directory copy is checked against the checksum too.
    """

    path: str | None
    data_dir: str
    filename: str | None
    url: str | None = None
    sha1: str | None = None
    content: bool = False
    sha256: str | None = None

    @property
    def checksum(self) -> tuple[str, str] | None:
        """(algorithm, expected hex digest): SHA-256 where the config gives one, else SHA-1."""
        if self.sha256:
            return "sha256", self.sha256
        return ("sha1", self.sha1) if self.sha1 else None

    def matches(self, path: Path) -> bool:
        algorithm, expected = self.checksum
        return file_digest(path, algorithm, self.content) == expected

    @property
    def cached(self) -> Path:
        return Path(self.data_dir).expanduser() / (self.filename or "")

    @cached_property
    def bundled(self) -> Path | None:
        """The copy shipped inside the package, when there is one with the expected checksum (hashed
        once: a run asks for the source several times)."""
        if not self.filename or not self.checksum:
            return None
        copy = BUNDLED / self.filename
        if copy.is_file() and self.matches(copy):
            return copy
        return None

    def prepare(self) -> None:
        """Check the data-directory copy, or download one (rank 0 only, under Lightning)."""
        if self.path is not None:
            return
        cached = self.cached
        if cached.exists():
            if self.checksum and not self.matches(cached):
                algorithm, expected = self.checksum
                name = algorithm.upper().replace("SHA", "SHA-")
                raise UserError(
                    f"{cached} does not have the expected {name} {expected}; "
                    "delete it to download it again, "
                    "or pass data.path=FILE to use it as it is"
                )
            return
        if self.bundled is not None:
            log.info(
                "%s: the copy shipped with rnnlab (no data.path, none in %s)", self.filename, cached.parent
            )
            return
        if self.url is None:
            return  # source() says where to put the file
        if not self.checksum:
            raise UserError(f"data.url={self.url} needs data.sha256 (or data.sha1) to verify the download")
        log.info("downloading %s to %s", self.url, cached)
        algorithm, expected = self.checksum
        fetch_verified(self.url, cached, expected, algorithm, content=self.content)

    def source(self) -> Path:
        """The file to read (after `prepare`)."""
        if self.path is not None:
            return Path(self.path).expanduser()
        if not self.cached.exists():
            if self.bundled is not None:
                return self.bundled
            how = "call prepare_data() to download it" if self.url else "put the file there"
            raise UserError(f"{self.cached} does not exist; pass data.path=FILE or {how}")
        return self.cached


def fetch_verified(
    url: str,
    dest: str | Path,
    checksum: str,
    algorithm: str = "sha1",
    timeout: float = 30,
    content: bool = False,
) -> Path:
    """Download `url` to `dest`, verify its checksum, and only then move it into place.

    The bytes go to a temporary file next to `dest`; `dest` appears (atomically, by rename) only
    once the checksum matches, so an interrupted or corrupted download is never used or left.
    With `content` the checksum is that of the decompressed content (the file is kept as it came).
    """
    dest = Path(dest).expanduser()
    try:
        with atomic_file(dest) as out:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
            out.flush()
            try:
                got = file_digest(out.name, algorithm, content)
            except UserError:
                raise UserError(
                    f"the download from {url} is not a complete gzip file; it was deleted. "
                    f"Retry, or put a good copy at {dest} by hand"
                ) from None
            if got != checksum:
                raise UserError(
                    f"the download from {url} has {algorithm.upper()} {got}, expected {checksum}; "
                    f"it was deleted. Retry, or put a good copy at {dest} by hand"
                )
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise UserError(
            f"could not download {url} ({reason}); put the file at {dest} by hand "
            f"(or point data.path / RNNLAB_DATA_DIR at a copy)"
        ) from None
    return dest
