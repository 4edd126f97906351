"""`atomic_file`: a file that appears whole or not at all, for every file rnnlab writes that others read.

metrics.json, checkpoints, downloads and IDX files are all written through it: the bytes go to a
temporary file in the target's own folder, are synced to disk, and replace the target by rename,
which is atomic on POSIX filesystems. If the writer fails (or the process dies) the target is left
as it was and the temporary file is removed (or, after a kill, is a hidden `.NAME.*.tmp` that
nothing reads).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """Yield a binary file to write; on a clean exit it becomes `path`, on an exception it vanishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    umask = os.umask(0)  # mkstemp makes the file private; give it the mode any new file would get
    os.umask(umask)
    os.chmod(temp_name, 0o666 & ~umask)
    try:
        with open(temp_name, "wb") as file:  # opened by name, so `file.name` is the temporary path
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def write_text_atomically(path: str | Path, text: str) -> None:
    with atomic_file(path) as file:
        file.write(text.encode())
