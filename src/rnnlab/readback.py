"""Reading back files rnnlab wrote earlier, which may have been damaged since.

rnnlab writes its files atomically, but a folder copied half-way, a disk error, a sync tool or a
hand edit can still cut a file short or fill it with bytes that do not parse. Every reader of such a
file goes through here, so that damage is one `Unreadable` error (a `UserError`: one line, never a
traceback) that names the file and says why, and a reader that can go on without the file can say
`unreadable: <file>: <reason>` and go on. Kept free of torch and lightning.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import yaml

from rnnlab.errors import UserError

ASIDE = ".damaged"  # the suffix of a damaged file that was renamed out of the way, never deleted


class Unreadable(UserError):
    """A file rnnlab wrote that cannot be read back (missing while needed, cut short, not parsable)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"unreadable: {self.path}: {reason}")


def reason_of(error: BaseException) -> str:
    """The first line of an error, short enough for a one-line message."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:160]}" if text else type(error).__name__


def checkpoint_problem(path: Path | str, error: BaseException) -> str:
    """Why `torch.load` failed on a checkpoint, in words (torch says "Invalid argument" for a cut file)."""
    size = Path(path).stat().st_size
    if size == 0:
        return "empty"
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive, whose index is at its end
        return f"not a whole checkpoint ({size} bytes, cut short or overwritten)"
    return reason_of(error)


def read_json(path: Path | str, expect: type = dict) -> Any:
    """The parsed JSON file, which must hold an `expect` (a dict by default)."""
    try:
        value = json.loads(Path(path).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise Unreadable(path, "missing") from None
    except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise Unreadable(path, reason_of(error)) from None
    if not isinstance(value, expect):
        raise Unreadable(path, f"holds a {type(value).__name__}, not a {expect.__name__}")
    return value


def read_yaml(path: Path | str, expect: type = dict) -> Any:
    """The parsed YAML file, which must hold an `expect`; an empty file reads as an empty one."""
    try:
        value = yaml.safe_load(Path(path).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise Unreadable(path, "missing") from None
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise Unreadable(path, reason_of(error)) from None
    value = expect() if value is None else value
    if not isinstance(value, expect):
        raise Unreadable(path, f"holds a {type(value).__name__}, not a {expect.__name__}")
    return value


def read_overrides(path: Path | str) -> list[str]:
    """A `.hydra/overrides.yaml`: a list of `key=value` strings."""
    overrides = read_yaml(path, expect=list)
    bad = next((item for item in overrides if not isinstance(item, str) or "=" not in item), None)
    if bad is not None:
        raise Unreadable(path, f"holds {str(bad)[:60]!r}, which is not an override (key=value)")
    return overrides


def set_aside(path: Path) -> Path:
    """Rename a damaged file to `NAME.damaged` (or `NAME.damaged-2`, ...) beside it, atomically, so that
    nothing reads it again and nothing is lost; returns the new path."""
    for number in range(1, 1000):
        aside = path.with_name(f"{path.name}{ASIDE}" + (f"-{number}" if number > 1 else ""))
        try:  # a hard link fails if the name is taken, so two processes never pick the same name
            os.link(path, aside)
        except FileExistsError:
            continue
        except OSError:  # a filesystem without hard links: a plain rename, if the name is free
            if aside.exists():
                continue
            path.rename(aside)
            return aside
        path.unlink()
        return aside
    raise UserError(f"{path} is damaged and could not be set aside (999 {ASIDE} files beside it); tidy up")
