"""Downloads that are verified before use and never left partial."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from rnnlab.errors import UserError


def file_digest(path: str | Path, algorithm: str = "sha1") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_verified(
    url: str, dest: str | Path, checksum: str, algorithm: str = "sha1", timeout: float = 30
) -> Path:
    """Download `url` to `dest`, verify its checksum, and only then move it into place.

    The bytes go to a temporary file next to `dest`; `dest` appears (atomically, by rename) only
    once the checksum matches, so an interrupted or corrupted download is never used or left.
    """
    dest = Path(dest).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        digest = hashlib.new(algorithm)
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for block in iter(lambda: response.read(1 << 16), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != checksum:
            raise UserError(
                f"the download from {url} has {algorithm.upper()} {digest.hexdigest()}, expected {checksum}; "
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
