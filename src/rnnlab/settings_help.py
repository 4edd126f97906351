"""`--help` of the key=value scripts (eval.py, generate.py), made from their config dataclass: one line
per setting with its default and the `help` text in its field's metadata. A field without help text is
an error, so the help cannot fall behind the settings. Kept free of torch and lightning."""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any

from omegaconf import MISSING

HELP_FLAGS = ("-h", "--help")
WIDTH = 100  # fixed, so that the text is the same wherever it is printed


def asks_for_help(argv: list[str]) -> bool:
    return any(arg in HELP_FLAGS for arg in argv)


def _default(field: dataclasses.Field) -> str:
    if field.default == MISSING:
        return "(required)"
    value: Any = field.default
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value)
    return f'"{text}"' if " " in text else text


def settings_help(config: type, usage: str, description: str, examples: list[str] = ()) -> str:
    """The help text: usage, what the script does, one line per setting, examples."""
    width = WIDTH
    fields = dataclasses.fields(config)
    missing = [f.name for f in fields if not f.metadata.get("help")]
    if missing:
        raise ValueError(f"{config.__name__} fields without help metadata: {', '.join(missing)}")
    left = [f"{f.name}={_default(f)}" for f in fields]
    column = max(map(len, left)) + 4
    lines = [
        f"usage: {usage}",
        "",
        *textwrap.wrap(description, width),
        "",
        "settings (key=value, defaults shown):",
    ]
    for name, field in zip(left, fields, strict=True):
        meaning = textwrap.wrap(field.metadata["help"], width - column) or [""]
        lines.append(f"  {name:<{column - 2}}{meaning[0]}")
        lines.extend(" " * column + more for more in meaning[1:])
    lines.append(f"  {'-h, --help':<{column - 2}}show this help and exit")
    if examples:
        lines += ["", "examples:", *(f"  {example}" for example in examples)]
    return "\n".join(lines) + "\n"


def unknown_setting(config: type, reason: str) -> str:
    """The one line for a setting OmegaConf refused (a mistyped key, a value of the wrong type)."""
    names = ", ".join(f.name for f in dataclasses.fields(config))
    return f"error: {reason}; the settings are {names} (--help explains each)"
