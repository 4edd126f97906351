"""Downloads that are verified before use and never left partial."""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from rnnlab.errors import UserError


def file_digest(path: str | Path, algorithm: str = "sha1", gunzip: bool = False) -> str:
    """The file's checksum; with `gunzip`, that of its decompressed content."""
    digest = hashlib.new(algorithm)
    try:
        with gzip.open(path, "rb") if gunzip else open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise UserError(
            f"{path} is not a complete gzip file ({error}); delete it and fetch it again"
        ) from None
    return digest.hexdigest()


def fetch_verified(
    url: str,
    dest: str | Path,
    checksum: str,
    algorithm: str = "sha1",
    timeout: float = 30,
    gunzip: bool = False,
) -> Path:
    """Download `url` to `dest`, verify its checksum, and only then move it into place.

    The bytes go to a temporary file next to `dest`; `dest` appears (atomically, by rename) only
    once the checksum matches, so an interrupted or corrupted download is never used or left.
    With `gunzip` the checksum is that of the decompressed content (the file is kept compressed).
    """
    dest = Path(dest).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
        try:
            got = file_digest(temp, algorithm, gunzip)
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
        os.replace(temp, dest)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise UserError(
            f"could not download {url} ({reason}); put the file at {dest} by hand "
            f"(or point data.path / RNNLAB_DATA_DIR at a copy)"
        ) from None
    finally:
        temp.unlink(missing_ok=True)
    return dest
