"""Hydra override strings, in one place: their keys, one quoting rule, and the overrides a run saved.

Every override rnnlab writes for Hydra (a run folder as `hydra.run.dir=`, `resume=`, a search's
environment) quotes its value with `hydra_quoted`: single quotes, as Hydra's override grammar reads
them, with a quote inside escaped, so a folder whose name holds `=`, `,` or a quote stays one string.
`unquoted` reads such a value back. Kept free of torch and lightning (used before Hydra starts).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from rnnlab.readback import Unreadable, read_overrides, read_yaml, set_aside

# In a quoted value, Hydra reads a backslash as an escape only before a quote or before the closing
# quote; so a run of backslashes there is doubled, and every other backslash is left as it is.
_BACKSLASHES_BEFORE_QUOTE = re.compile(r"(\\+)(?='|$)")


def key_of(override: str) -> str:
    """`trainer.max_epochs` of `trainer.max_epochs=4`, `model` of `model=gru`, `+model=gru` or `~model`."""
    return override.split("=", 1)[0].lstrip("+~")


def value_of(override: str) -> str:
    """The value of `key=value`, its quotes removed."""
    return unquoted(override.split("=", 1)[1])


def hydra_quoted(text: str | Path) -> str:
    """`text` as one single-quoted string of Hydra's override grammar."""
    escaped = _BACKSLASHES_BEFORE_QUOTE.sub(lambda m: m.group(1) * 2, str(text))
    return "'" + escaped.replace("'", "\\'") + "'"


def unquoted(value: str) -> str:
    """A value as Hydra reads it: the text inside `'...'` or `"..."` (escapes undone), else as given."""
    if not (len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'"):
        return value
    quote, inner, out, i = value[0], value[1:-1], [], 0
    while i < len(inner):
        end = i
        while end < len(inner) and inner[end] == "\\":
            end += 1
        if end == i:
            out.append(inner[i])
            i += 1
            continue
        backslashes = end - i
        if end < len(inner) and inner[end] != quote:  # not an escape: kept as typed
            out.append("\\" * backslashes)
        else:  # before a quote or the end: pairs are one backslash each, an odd one escapes the quote
            out.append("\\" * (backslashes // 2))
            if backslashes % 2 and end < len(inner):
                out.append(quote)
                end += 1
        i = end
    return "".join(out)


def shell_command(script: str, overrides: list[str]) -> str:
    """A command line a user can paste into a POSIX shell: `python scripts/train.py "resume='...'"`."""
    return " ".join(["python", script, *(shell_word(o) for o in overrides)])


def shell_word(text: str) -> str:
    """`text` as one word of a POSIX shell, quoted only as much as it needs (double quotes around a
    Hydra-quoted value read better than shlex's `'"'"'`)."""
    if shlex.quote(text) == text or "'" not in text:
        return shlex.quote(text)
    if not any(c in text for c in '"$`\\!'):
        return f'"{text}"'
    return shlex.quote(text)


def saved_overrides(run_dir: Path) -> list[str]:
    """The run's command-line overrides, from `.hydra/overrides.yaml`, checked against the copy Hydra
    keeps in `.hydra/hydra.yaml` (`hydra.overrides.task`). A damaged one of the two is set aside and the
    other is used (Hydra writes both again when the run starts); if both are damaged, or both parse but
    disagree, `Unreadable` says so in one line."""
    import sys

    hydra_dir = run_dir / ".hydra"
    primary, copy = hydra_dir / "overrides.yaml", hydra_dir / "hydra.yaml"
    read: dict[Path, list[str] | Unreadable] = {}
    for path, reader in ((primary, read_overrides), (copy, hydra_task_overrides)):
        try:
            read[path] = reader(path)
        except Unreadable as error:
            read[path] = error
    first, second = read[primary], read[copy]
    if isinstance(first, Unreadable) and isinstance(second, Unreadable):
        if not copy.exists():  # a run folder from before hydra.yaml was kept, or made by hand
            raise first
        raise Unreadable(primary, f"{first.reason} (hydra.yaml's copy too: {second.reason}); start a new run")
    if isinstance(first, list) and isinstance(second, list) and first != second:
        raise Unreadable(
            primary, "disagrees with hydra.yaml's hydra.overrides.task (one of them is damaged); repair one"
        )
    for path, value in read.items():
        if isinstance(value, Unreadable) and path.exists():
            print(f"warning: {value}; set aside as {set_aside(path).name}", file=sys.stderr)
    return first if isinstance(first, list) else second


def hydra_task_overrides(path: Path) -> list[str]:
    """The command-line overrides Hydra records in `.hydra/hydra.yaml`."""
    task = read_yaml(path)
    for key in ("hydra", "overrides", "task"):
        task = task.get(key) if isinstance(task, dict) else None
    if not isinstance(task, list) or not all(isinstance(item, str) for item in task):
        raise Unreadable(path, "has no list of overrides at hydra.overrides.task")
    return task
